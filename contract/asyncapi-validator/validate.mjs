// Validate an AsyncAPI document with the official parser, @asyncapi/parser (pinned in package.json).
// Usage: node validate.mjs FILE. Prints the parser's diagnostics as a JSON array on stdout
// (severity: error, warning, information or hint) and exits 1 if any is an error.
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "information", "hint"];

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs FILE");
  process.exit(2);
}
const { document, diagnostics } = await fromFile(new Parser(), resolve(file)).parse();
const found = diagnostics.map((d) => ({
  severity: SEVERITY[d.severity] ?? String(d.severity),
  code: d.code,
  message: d.message,
  path: d.path.join("/"),
  line: d.range ? d.range.start.line + 1 : null,
}));
console.log(JSON.stringify(found, null, 2));
process.exitCode = document !== undefined && !found.some((d) => d.severity === "error") ? 0 : 1;
