/// <reference types="svelte" />
/// <reference types="vite/client" />
/// <reference types="vite-plugin-pwa/vanillajs" />

/** The app's version and build time (vite.config.ts `define`); undefined outside a Vite build (tests). */
declare const __PEFT_LAB_BUILD__: string | undefined;
