/** Environment variables the agent reads (shared with the CLI's help text). */
export const AGENT_ENV = {
  namespace: "WORKFORCE_BACK_CHANNEL_FULLY_QUALIFIED_NAMESPACE",
  connectionString: "WORKFORCE_BACK_CHANNEL_CONNECTION_STRING",
  topic: "WORKFORCE_CONTROL_TOPIC_NAME",
  pidDir: "JOBQ_PID_DIR",
} as const;
