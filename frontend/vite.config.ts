/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The API that `make dev` runs on port 3000; the dev server proxies every server path to it so
// the page talks to one origin, as it does when the Go binary serves the build.
const api = 'http://localhost:3000';

export default defineConfig({
  base: '/',
  plugins: [react()],
  build: {
    // The Go binary embeds frontend/dist and serves dist/app; dist/missing stays untouched.
    outDir: 'dist/app',
    emptyOutDir: true,
    target: 'es2022',
  },
  server: {
    port: 5174,
    strictPort: true,
    proxy: {
      '/v1': { target: api, changeOrigin: false },
      '/ws': { target: api, ws: true, changeOrigin: false },
      '/monitoring': { target: api, changeOrigin: false },
      '/healthz': { target: api },
      '/readyz': { target: api },
      '/openapi.json': { target: api },
      '/docs': { target: api },
    },
  },
  test: {
    environment: 'happy-dom',
    environmentOptions: { happyDOM: { url: 'http://localhost:5174/' } },
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
