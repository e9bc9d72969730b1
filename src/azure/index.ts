export * from "./retry.js";
export * from "./rate-limiter.js";
export * from "./credentials.js";
