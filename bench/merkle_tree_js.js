// Build the OpenZeppelin StandardMerkleTree of the digests in a file (one 0x-hex per line),
// print {"root": ..., "ms": ...} (build time only). Used by bench_tree.py.
"use strict";
const fs = require("fs");
const path = require("path");
const { StandardMerkleTree } = require(path.join(__dirname, "..", "node_modules", "@openzeppelin", "merkle-tree"));
const digests = fs.readFileSync(process.argv[2], "utf8").trim().split("\n");
const values = digests.map((d) => [d]);
const t = process.hrtime.bigint();
const tree = StandardMerkleTree.of(values, ["bytes32"]);
const ms = Number(process.hrtime.bigint() - t) / 1e6;
process.stdout.write(JSON.stringify({ root: tree.root, ms }));
