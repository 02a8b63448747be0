// Bundles web/src into the Python package's static folder (never committed): app.js, style.css
// and index.html, served by `voxloop run` at /.

import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const out = join(here, "..", "src", "voxloop", "server", "static");

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(src, "app.js"), join(src, "style.css")],
  outdir: out,
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["chrome111", "firefox121", "safari16.4"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
});
// Last, so a half-finished build never looks complete to the server or to make.
await copyFile(join(src, "index.html"), join(out, "index.html"));
console.log(`web: built ${out}`);
