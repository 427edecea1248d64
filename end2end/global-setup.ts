import { chromium, type FullConfig } from "@playwright/test";

export const STORAGE_STATE = "end2end/.auth/operator.json";

// Signs in once through the real form (E2E_USER / E2E_PASSWORD, created by scripts/test.sh with
// `server user add`) and keeps the session cookie for every test's browser context.
export default async function globalSetup(config: FullConfig) {
  const { baseURL, launchOptions } = config.projects[0].use;
  const user = process.env.E2E_USER;
  const password = process.env.E2E_PASSWORD;
  if (!user || !password) throw new Error("E2E_USER / E2E_PASSWORD are not set");
  const browser = await chromium.launch(launchOptions);
  const page = await browser.newPage({ baseURL });
  await page.goto("/");
  if (!page.url().includes("/login")) throw new Error(`expected the sign-in form, got ${page.url()}`);
  await page.getByLabel("username").fill(user);
  await page.getByLabel("password").fill(password);
  await page.getByRole("button", { name: "[ SIGN IN ]" }).click();
  await page.waitForURL((url) => !url.pathname.startsWith("/login"));
  await page.context().storageState({ path: STORAGE_STATE });
  await browser.close();
}
