import type { TokenCredential } from "@azure/core-auth";
import type { Logger } from "../logging/logger.js";
import type { Settings } from "../config/settings.js";
import type { DrainChannel } from "../backchannel/types.js";
import type { BackChannelConfig } from "../backchannel/config.js";
import type { WriteFence } from "./fence.js";

/** What a region adapter gets from the daemon. Everything with I/O is injected, so tests can swap it. */
export interface RegionContext {
  /** Already a child logger with { region }. */
  logger: Logger;
  /** The daemon's global settings (concurrency, drain operation and timeout, call timeout...). */
  settings: Settings;
  /**
   * The Azure credential, built on first use only (local mode never builds one). Tests inject a static
   * credential; production uses DefaultAzureCredential.
   */
  credential(): TokenCredential;
  /** Extra CA certificates (PEM) to trust for Azure endpoints: emulators and private clouds. */
  tlsCa?: string;
  /** Checked before every write the region makes (leader election); none: every write may go. */
  fence?: WriteFence;
  /** Builds the drain channel of a region that names a back channel. */
  createDrainChannel?(regionName: string, config: BackChannelConfig): DrainChannel;
}
