/** The package version, embedded at build time (bun build inlines the JSON import). */
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
