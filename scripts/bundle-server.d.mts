/** Bundles `src/main.ts` of `root` (default: the working directory) into `<outdir>/main.js`; returns its path. */
export function bundleServer(outdir: string, options?: { root?: string }): Promise<string>;
