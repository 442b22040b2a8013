// Parses an AsyncAPI document with AsyncAPI's own parser and prints its diagnostics as JSON:
// {"errors": [...], "warnings": [...], "channels": n}. Exit 1 when there is any error.
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node parse_asyncapi.mjs ASYNCAPI_FILE");
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, resolve(file)).parse();
const shown = (d) => ({ code: d.code, message: d.message, path: d.path.join("/") });
const errors = diagnostics.filter((d) => d.severity === 0).map(shown);
const warnings = diagnostics.filter((d) => d.severity === 1).map(shown);
const channels = document ? document.channels().length : 0;
console.log(JSON.stringify({ errors, warnings, channels }, null, 1));
process.exit(errors.length || !document ? 1 : 0);
