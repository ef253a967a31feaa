/**
 * The loader's log lines: one JSON object per line, whose `event` and `reason` fields are the
 * contract (contract/events.json) that the CloudWatch metric filters match. The same fields as
 * the Python loader's lines: level, logger, message, event, and the event's own fields.
 */

import type { Event, FailureReason } from "./contract.js";

export type Level = "INFO" | "WARNING" | "ERROR";

export interface LogLine {
  readonly level: Level;
  readonly logger: "apikeys";
  readonly message: string;
  readonly event: Event;
  readonly reason?: FailureReason | "no_secret_arn";
  readonly source?: string;
  readonly key_count?: number;
  /** Clients named in a warning (their ids, never a key). */
  readonly client_ids?: readonly string[];
}

/** Where the lines go: by default one JSON line each on stderr. */
export type LogWriter = (line: LogLine) => void;

/** The line as written: keys in sorted order, as the Python loader writes them. */
export function formatLine(line: LogLine): string {
  const sorted = Object.fromEntries(Object.entries(line).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify(sorted);
}

export const writeToStderr: LogWriter = (line) => {
  process.stderr.write(`${formatLine(line)}\n`);
};
