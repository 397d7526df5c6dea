// Bundles the SDK with esbuild: dist/streamwatch.js (a <script> global `streamwatch`) and
// dist/streamwatch.esm.js (an ES module, also what the unit tests import).
import { readFileSync } from "node:fs";
import { build } from "esbuild";

const root = new URL("../../ingest/", import.meta.url);
const catalog = JSON.parse(readFileSync(new URL("error_catalog.json", root), "utf8"));
const table = JSON.parse(readFileSync(new URL("player_error_codes.json", root), "utf8"));
const used = new Set();
for (const p of Object.values(table.players)) {
  used.add(p.default);
  for (const c of Object.values(p.codes)) used.add(c);
}
const categories = {};
for (const e of catalog.errors) if (used.has(e.code)) categories[e.code] = e.category;
const missing = [...used].filter((c) => !(c in categories));
if (missing.length) throw new Error(`player_error_codes.json maps to codes not in the catalog: ${missing}`);

const catalogPlugin = {
  name: "catalog-categories",
  setup(b) {
    b.onResolve({ filter: /^virtual:catalog-categories$/ }, (a) => ({ path: a.path, namespace: "catalog" }));
    b.onLoad({ filter: /.*/, namespace: "catalog" }, () => ({ contents: JSON.stringify(categories), loader: "json" }));
  },
};
const common = { entryPoints: ["src/index.ts"], bundle: true, target: "es2020", plugins: [catalogPlugin], logLevel: "warning" };
await build({ ...common, format: "iife", globalName: "streamwatch", minify: true, outfile: "dist/streamwatch.js" });
await build({ ...common, format: "esm", outfile: "dist/streamwatch.esm.js" });
