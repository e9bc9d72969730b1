import type { ResolvedConfig, SettingSource } from "./load.js";

function showValue(entry: SettingSource): string {
  if (entry.invalid) return "(invalid)";
  if (entry.secret) return entry.source === "unset" ? "(unset)" : "(set; hidden)";
  if (entry.value === undefined) return "(unset)";
  if (Array.isArray(entry.value)) return entry.value.length > 0 ? entry.value.join(", ") : "(none)";
  return typeof entry.value === "string" ? entry.value : JSON.stringify(entry.value);
}

function showSource(entry: SettingSource, configFile: string | undefined): string {
  switch (entry.source) {
    case "variable":
      return `variable ${entry.env}`;
    case "file":
      return `file ${configFile ?? ""}`.trim();
    default:
      return entry.source;
  }
}

/**
 * The effective configuration as a table, one line per setting, with the source of each value (variable,
 * file, default); secrets are never shown. Then the warnings and problems. Pure: `workforce config` prints
 * it and the daemon logs the same facts at start.
 */
export function formatResolvedConfig(resolved: ResolvedConfig, configFile: string | undefined): string {
  const rows = resolved.sources.map((entry) => [entry.key, showValue(entry), showSource(entry, configFile)]);
  const widths = [0, 1].map((column) =>
    Math.max(column === 0 ? 7 : 5, ...rows.map((row) => Math.min(row[column]!.length, 60))),
  );
  const lines = [
    `${"SETTING".padEnd(widths[0]! + 2)}${"VALUE".padEnd(widths[1]! + 2)}SOURCE`,
    ...rows.map(
      ([key, value, source]) => `${key!.padEnd(widths[0]! + 2)}${value!.padEnd(widths[1]! + 2)}${source}`,
    ),
  ];
  for (const warning of resolved.warnings) lines.push(`warning: ${warning}`);
  for (const problem of resolved.problems) lines.push(`problem: ${problem.where}: ${problem.message}`);
  return `${lines.join("\n")}\n`;
}

/** The same facts as a log field: { key: "value (source)" }, secrets shown only as set or unset. */
export function configLogFields(resolved: ResolvedConfig): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const entry of resolved.sources) {
    fields[entry.key] = `${showValue(entry)} (${entry.source === "variable" ? entry.env : entry.source})`;
  }
  return fields;
}
