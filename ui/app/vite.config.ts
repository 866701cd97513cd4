import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` serves the UI with hot reload and forwards the API to a running `cairn serve`.
const api = process.env.CAIRN_API ?? "http://127.0.0.1:3200";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: process.env.CAIRN_UI_OUT ?? "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: { proxy: { "/api": api, "/metrics": api } },
});
