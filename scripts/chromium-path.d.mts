/** Types for scripts/chromium-path.mjs (plain JS so `node scripts/ensure-chromium.mjs` runs without a build step). */
export declare const NO_CHROMIUM_MESSAGE: string;
export declare const DEBIAN_CHROMIUM: string;
export declare function findChromium(): string;
