/**
 * `audit`: the audit trail (src/observe/audit.ts), one JSON line per object access or change.
 *
 *   audit:
 *     enabled: true
 *     path: /var/log/yatagarasu/audit.log   # relative paths resolve against the config file's folder
 *     max_size_mb: 100                      # rotate when the next line would pass this size
 *     max_files: 10                         # rotated files kept: audit.log.1 (newest) … audit.log.10
 *
 * The whole section is restart-only (the App owns one open file for the process's life).
 */
import { z } from "zod";
import { filePath } from "./path.ts";

export const AuditSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    path: filePath.optional(),
    /** Fractions are allowed (tests rotate at a few KiB); 1 TiB is far beyond any sane file. */
    max_size_mb: z.number().positive().max(1024 * 1024).default(100),
    max_files: z.number().int().min(1).max(1000).default(10),
  })
  // Worded without naming a key: the original's audit_log form reports it at audit_log.file.path,
  // where "set audit.path" sent its user to write an `audit` section beside it (refused: both given).
  .superRefine((a, ctx) => {
    if (a.enabled && a.path === undefined) ctx.addIssue({ code: "custom", path: ["path"], message: "required while the audit trail is enabled: the file it is written to (e.g. /var/log/yatagarasu/audit.log)" });
  });
export type AuditConfig = z.infer<typeof AuditSchema>;
