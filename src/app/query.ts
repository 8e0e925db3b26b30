/** One parameter of the page's query string (before the hash), or null. */
export function queryParam(name: string): string | null {
  return new URLSearchParams(location.search).get(name);
}
