import { z } from "zod";

// PLACEHOLDER: the back-channel issue fills this in (namespace, topic, connection string, admin endpoint).
export const backChannelSchema = z.object({}).passthrough();
export type BackChannelConfig = z.output<typeof backChannelSchema>;
