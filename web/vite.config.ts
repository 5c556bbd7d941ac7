// Builds the dashboard into the Python package, where `dosi web` / `dosi demo` serve it.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/dosi/web/static",
    emptyOutDir: true,
    assetsDir: "assets",
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev` against a running `dosi web` (or `dosi demo`) on :8700.
    proxy: { "/ngsi-ld": "http://127.0.0.1:8700", "/api": "http://127.0.0.1:8700" },
  },
});
