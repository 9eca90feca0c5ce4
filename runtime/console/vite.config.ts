// Builds the console into ONE self-contained HTML file (every script and style inlined) inside the
// Python package, so the runtime serves it with no static-file tree, no CDN and one auth check.
//
// Why the built file is committed (runtime/src/livedub/runtime/server/console_dist/index.html)
// rather than built at install time: `pip install ./runtime`, the runtime image and `make run`
// then need no Node.js at all, and the page is exactly the one reviewed in git. What keeps it
// honest is tests/unit/runtime/test_console_bundle.py, which rebuilds from this folder's
// package-lock.json (npm ci) and fails when the committed file differs: rebuild with
// `make console`. Vite 6 (not 8) because it still runs on Debian 12's Node 18.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { viteSingleFile } from "vite-plugin-singlefile";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  plugins: [viteSingleFile()],
  build: {
    outDir: process.env.CONSOLE_OUT_DIR ?? fileURLToPath(new URL("../src/livedub/runtime/server/console_dist", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: false,
  },
});
