#!/usr/bin/env node
// A tiny `solc` command for py-solc-x, driving solc-js (the npm `solc` package,
// the same compiler built to WebAssembly). It answers the two calls py-solc-x
// makes: `--version`, and `--standard-json` with the input on stdin. The plain
// `solcjs --standard-json` prints a line about SMT solvers before the JSON,
// which breaks py-solc-x's parse; this wrapper prints only the JSON.
"use strict";
const path = require("path");
const fs = require("fs");

function loadSolc() {
  const roots = [process.env.SUPET_NODE_MODULES, path.join(process.cwd(), "node_modules"),
                 path.join(__dirname, "..", "node_modules")].filter(Boolean);
  for (const root of roots) {
    const candidate = path.join(root, "solc");
    if (fs.existsSync(candidate)) return require(candidate);
  }
  return require("solc");
}

const solc = loadSolc();
const args = process.argv.slice(2);
if (args.includes("--version")) {
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n");
} else if (args.includes("--standard-json")) {
  const chunks = [];
  process.stdin.on("data", (c) => chunks.push(c));
  process.stdin.on("end", () => {
    const input = Buffer.concat(chunks).toString("utf8");
    process.stdout.write(solc.compile(input));
  });
} else {
  process.stderr.write("usage: solc-standard-json.js --version | --standard-json < input.json\n");
  process.exit(2);
}
