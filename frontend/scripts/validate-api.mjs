// Validates the contracts in ../api with their ecosystems' own validators (issue #12):
//   api/openapi.yaml   Redocly's linter (@redocly/openapi-core, the "recommended" rules)
//   api/asyncapi.yaml  the AsyncAPI initiative's parser (@asyncapi/parser, spec + schema validation)
// Exit 1 on any error; warnings are printed but do not fail.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { createConfig, lint } from "@redocly/openapi-core";
import { Parser } from "@asyncapi/parser";

const api = (name) => fileURLToPath(new URL(`../../api/${name}`, import.meta.url));
const severityError = 0; // @asyncapi/parser's DiagnosticSeverity.Error
let failed = false;

async function openapi() {
  const config = await createConfig({ extends: ["recommended"] });
  const problems = await lint({ ref: api("openapi.yaml"), config });
  for (const p of problems) {
    const where = p.location?.[0]?.pointer ?? "";
    console.log(`openapi.yaml ${p.severity}: ${p.message} ${where} (${p.ruleId})`);
    if (p.severity === "error") failed = true;
  }
  console.log(`openapi.yaml: ${problems.filter((p) => p.severity === "error").length} errors, ${problems.filter((p) => p.severity !== "error").length} warnings (redocly recommended)`);
}

async function asyncapi() {
  const parser = new Parser();
  const diagnostics = await parser.validate(await readFile(api("asyncapi.yaml"), "utf8"), { source: api("asyncapi.yaml") });
  for (const d of diagnostics) {
    const level = d.severity === severityError ? "error" : "warning";
    console.log(`asyncapi.yaml ${level}: ${d.message} ${d.path?.join(".") ?? ""} (${d.code})`);
    if (d.severity === severityError) failed = true;
  }
  console.log(`asyncapi.yaml: ${diagnostics.filter((d) => d.severity === severityError).length} errors, ${diagnostics.filter((d) => d.severity !== severityError).length} warnings (@asyncapi/parser)`);
}

await openapi();
await asyncapi();
if (failed) process.exit(1);
