/**
 * Brown's 15 categories and brown-genre's grouping of them into 4 labels (pure data, so the task
 * registry can use it in the browser).
 */

/** The 15 categories of cats.txt, in the order of the Brown manual's letters A-R. */
export const BROWN_CATEGORIES = [
  'news', // A  press: reportage
  'editorial', // B  press: editorial
  'reviews', // C  press: reviews
  'religion', // D
  'hobbies', // E  skills and hobbies
  'lore', // F  popular lore
  'belles_lettres', // G
  'government', // H  miscellaneous: government and house organs
  'learned', // J
  'fiction', // K  general fiction
  'mystery', // L  mystery and detective fiction
  'science_fiction', // M
  'adventure', // N  adventure and western fiction
  'romance', // P  romance and love story
  'humor', // R
] as const;
export type BrownCategory = (typeof BROWN_CATEGORIES)[number];

/**
 * brown-genre's labels. Only 25 of the 500 documents are held out of pretraining (holdout.ts), and
 * humor, reviews and science_fiction have none of them, so a 15-way test set inside the held-out
 * documents cannot exist. The categories are grouped by the Brown manual's own headings instead:
 * "Press" (A-C), "Learned" (J), the fiction categories K-P plus Humor (R, which the manual counts
 * with them as imaginative prose), and the rest of informative prose, D-H, as general non-fiction.
 * Every group then has held-out documents (press 4, nonfiction 12, learned 3, fiction 6).
 */
export const GENRE_LABELS = ['press', 'nonfiction', 'learned', 'fiction'] as const;
export type GenreLabel = (typeof GENRE_LABELS)[number];
export const GENRE_OF: Readonly<Record<BrownCategory, GenreLabel>> = {
  news: 'press',
  editorial: 'press',
  reviews: 'press',
  religion: 'nonfiction',
  hobbies: 'nonfiction',
  lore: 'nonfiction',
  belles_lettres: 'nonfiction',
  government: 'nonfiction',
  learned: 'learned',
  fiction: 'fiction',
  mystery: 'fiction',
  science_fiction: 'fiction',
  adventure: 'fiction',
  romance: 'fiction',
  humor: 'fiction',
};
