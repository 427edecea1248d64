import { test, expect } from "./fixtures";

const ARTIFACTS = "end2end/artifacts";

test.describe("dashboard", () => {
  test("is server-rendered: readable with JavaScript disabled", async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const response = await page.goto("/");
    expect(response?.status()).toBe(200);

    // Everything below came from the server's HTML alone.
    await expect(page.getByRole("heading", { name: "SESSIONS" })).toBeVisible();
    await expect(page.getByTestId("sessions-empty")).toHaveText("NO SESSIONS RECORDED.");
    await expect(page.getByTestId("render-mode")).toHaveText("mode: ssr");
    await expect(page.getByTestId("refresh-count")).toHaveText("0 refreshes");
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-ssr.png`, fullPage: true });
    await context.close();
  });

  test("hydrates: the refresh control works once the WASM is live", async ({ page }) => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });

    await page.goto("/");
    // The mode flips only when an effect runs, which only happens in the hydrated browser app.
    await expect(page.getByTestId("render-mode")).toHaveText("mode: live");

    const listCall = page.waitForResponse((r) => r.url().includes("/api/sf/list_sessions"));
    await page.getByTestId("refresh").click();
    const response = await listCall;
    expect(response.status()).toBe(200);
    await expect(page.getByTestId("refresh-count")).toHaveText("1 refresh");
    await expect(page.getByTestId("sessions-empty")).toBeVisible();

    await page.getByTestId("refresh").click();
    await expect(page.getByTestId("refresh-count")).toHaveText("2 refreshes");

    await page.screenshot({ path: `${ARTIFACTS}/dashboard-hydrated.png`, fullPage: true });
    expect(errors, `browser errors: ${errors.join("\n")}`).toEqual([]);
  });

  test("the status filter is a plain GET form that round-trips the choice", async ({ page }) => {
    await page.goto("/");
    await expect(page.getByTestId("render-mode")).toHaveText("mode: live");
    await page.getByLabel("status").selectOption("failed");
    await page.getByRole("button", { name: "FILTER" }).click();
    await expect(page).toHaveURL(/\?status=failed$/);
    await expect(page.getByLabel("status")).toHaveValue("failed");
    await expect(page.getByTestId("sessions-empty")).toBeVisible();
  });

  test("unknown pages answer 404 with a way back", async ({ page }) => {
    const response = await page.goto("/no-such-page");
    expect(response?.status()).toBe(404);
    await expect(page.getByRole("link", { name: "back to the dashboard" })).toBeVisible();
  });

  test("health and readiness probes answer JSON", async ({ request }) => {
    const health = await request.get("/healthz");
    expect(health.status()).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await request.get("/readyz");
    expect(ready.status()).toBe(200);
    // The end-to-end fleet's one OpenCode server, healthy, its address without the password.
    const body = await ready.json();
    expect(body.status).toBe("ready");
    expect(body.checks).toEqual({ database: "ok" });
    expect(body.opencode).toHaveLength(1);
    expect(body.opencode[0]).toMatchObject({ healthy: true, breaker: "closed", capacity: 4 });
    expect(body.opencode[0].server).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(JSON.stringify(body)).not.toContain("password");
    expect(body.queue).toMatchObject({ expired: 0 });
  });
});
