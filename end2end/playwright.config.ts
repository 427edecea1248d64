import { defineConfig } from "@playwright/test";

// Drives Debian's Chromium (never a downloaded browser) against a server the caller started:
// scripts/test.sh starts the real orchestrator and passes its address in BASE_URL.
const baseURL = process.env.BASE_URL;
if (!baseURL) {
  throw new Error("BASE_URL is not set: start the server first (scripts/test.sh does)");
}

export default defineConfig({
  testDir: "./tests",
  // Signs in through the real form once; every context starts with that session cookie.
  globalSetup: "./global-setup.ts",
  outputDir: "./test-results",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 30_000,
  reporter: [["list"]],
  use: {
    baseURL,
    storageState: "end2end/.auth/operator.json",
    screenshot: "only-on-failure",
    trace: "off",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
