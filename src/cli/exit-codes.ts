/** Exit codes of every command. */
export const EXIT_OK = 0;
/** A runtime failure: a call failed, nothing (or not all) was done because of it. */
export const EXIT_RUNTIME = 1;
/** Bad configuration or usage. */
export const EXIT_CONFIG = 2;
/** A one-shot command did less than asked (no room, nothing to drain...) and said how much and why. */
export const EXIT_PARTIAL = 3;
