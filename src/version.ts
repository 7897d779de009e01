/** The package version, embedded at build time (bun build inlines the JSON import). */
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

// Set by build.ts (bun build's `define`) in a compiled executable; absent when run from source.
declare const YATAGARASU_COMMIT: string | undefined;
declare const YATAGARASU_BUILD_TARGET: string | undefined;

/** The commit the executable was built from ("unknown" when the build could not tell), or "source" when run from src/. */
export const COMMIT: string = typeof YATAGARASU_COMMIT === "string" ? YATAGARASU_COMMIT : "source";
/** linux-x64 / linux-arm64 for a compiled executable, else the running platform. */
const BUILD_TARGET: string = typeof YATAGARASU_BUILD_TARGET === "string" ? YATAGARASU_BUILD_TARGET : `${process.platform}-${process.arch}`;

/** What --version prints: the version, then the commit and target, so that a running build can be identified. */
export const VERSION_LINE = `yatagarasu ${VERSION} (commit ${COMMIT}, ${BUILD_TARGET})`;
