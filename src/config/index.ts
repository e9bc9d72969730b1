export { loadConfig, ConfigError, type Config, type ConfigProblem, type LoadOptions } from "./load.js";
export { SETTINGS, type Settings, type SettingSpec } from "./settings.js";
export { regionConfigSchema, regionListSchema, type RegionConfig } from "./regions.js";
