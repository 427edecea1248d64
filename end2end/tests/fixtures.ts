import { test as base, expect } from "@playwright/test";

// Pages run as a signed-in operator's browser (the session cookie global-setup.ts got through the
// real sign-in form), so every form they post carries its CSRF token like a person's would.
// Direct API calls (`request`) are a script's: a bearer token, E2E_TOKEN, which scripts/test.sh
// created with `server token create`.
export const test = base.extend({
  request: async ({ playwright, baseURL }, use) => {
    const token = process.env.E2E_TOKEN;
    if (!token) throw new Error("E2E_TOKEN is not set (scripts/test.sh creates one)");
    const context = await playwright.request.newContext({
      baseURL,
      extraHTTPHeaders: { Authorization: `Bearer ${token}` },
    });
    await use(context);
    await context.dispose();
  },
});

export { expect };
export type { Page, APIRequestContext } from "@playwright/test";
