import { test, expect, type Page, type APIRequestContext } from "./fixtures";
import AxeBuilder from "@axe-core/playwright";
import SwaggerParser from "@apidevtools/swagger-parser";

// What operators do, in real Chromium, against the real orchestrator, which drives one REAL
// OpenCode server answered by the fake LLM (scripts/test.sh starts both: testkit's e2e-fleet).
// E2E_REPO is the git repository the sessions work on.

const ARTIFACTS = "end2end/artifacts";
const REPO = process.env.E2E_REPO ?? "";
const REQUIREMENT = "Add customer records with create, list, edit and delete screens";

test.describe.configure({ mode: "serial" });

/// One agent that can do everything the CRUD template asks for, on the fake model.
async function ensureAgent(request: APIRequestContext) {
  const existing = await request.get("/api/v1/agents/build");
  if (existing.status() === 200) return;
  const created = await request.post("/api/v1/agents", {
    data: {
      name: "build",
      capabilities: ["backend", "frontend", "database", "security", "testing", "docs", "devops"],
      model: "fake/fake-coder",
      max_concurrency: 4,
    },
  });
  expect(created.status(), await created.text()).toBe(201);
}

/// Fails the test on any page error or console error (hydration problems show up there).
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return errors;
}

/// In the page: opens its own EventSource on the event stream and records, per event, how long
/// after the orchestrator stamped it (when it took it from OpenCode) the browser received it.
async function recordEventLatency(page: Page) {
  await page.evaluate(() => {
    const w = window as unknown as { __latencies: number[]; __types: string[] };
    w.__latencies = [];
    w.__types = [];
    const source = new EventSource("/api/v1/events");
    const record = (e: MessageEvent) => {
      const data = JSON.parse(e.data);
      w.__latencies.push(Date.now() - Date.parse(data.occurred_at));
      w.__types.push(data.event_type);
    };
    for (const t of [
      "session.status_changed",
      "session.tool",
      "session.agent_message",
      "session.dispatched",
      "session.workspace",
      "session.result",
      "session.metrics_recorded",
    ]) {
      source.addEventListener(t, record as EventListener);
    }
  });
}

test("a task created from the form runs its sessions live to completion; a session's diff opens", async ({
  page,
  request,
}) => {
  test.setTimeout(240_000);
  expect(REPO, "E2E_REPO must name the fleet's repository").not.toBe("");
  await ensureAgent(request);
  const errors = watchErrors(page);

  await page.goto("/tasks");
  // Let the WASM load and hydrate before using the form.
  await page.waitForLoadState("networkidle");
  await expect(page.getByTestId("create-task")).toBeVisible();
  // Invalid first: the error is shown next to the field, and what was typed stays.
  await page.locator("#requirement").fill(REQUIREMENT);
  await page.locator("#workspace").fill("/definitely/not/a/repository");
  await page.locator('input[name="start"]').check();
  await page.getByTestId("create-task-submit").click();
  await expect(page.getByTestId("form-error").first()).toContainText("workspace");
  await expect(page.locator("#requirement")).toHaveValue(REQUIREMENT);
  await page.screenshot({ path: `${ARTIFACTS}/task-form-error.png`, fullPage: true });

  await page.locator("#workspace").fill(REPO);
  await page.locator('input[name="start"]').check();
  await page.getByTestId("create-task-submit").click();
  await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/);
  await recordEventLatency(page);

  // The tree shows up at once; its nodes move to completed without a reload.
  await expect(page.getByTestId("task-node")).toHaveCount(7);
  await expect(page.getByTestId("routing-explanation").first()).toContainText("chose build");
  await expect(page.locator('[data-testid="task-node"][data-status="running"]').first()).toBeVisible({
    timeout: 60_000,
  });
  await page.screenshot({ path: `${ARTIFACTS}/task-running.png`, fullPage: true });
  await expect(page.getByTestId("task-status")).toHaveText("completed", { timeout: 200_000 });
  await expect(page.locator('[data-testid="task-node"][data-status="completed"]')).toHaveCount(7);
  await page.screenshot({ path: `${ARTIFACTS}/task-completed.png`, fullPage: true });

  const latencies: number[] = await page.evaluate(
    () => (window as unknown as { __latencies: number[] }).__latencies,
  );
  expect(latencies.length).toBeGreaterThan(10);
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  console.log(
    `event latency orchestrator -> browser over ${sorted.length} events: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${sorted[sorted.length - 1]} ms`,
  );

  // A session of the tree: its diff is rendered (escaped text) with the file it wrote.
  await page.getByTestId("task-session").first().click();
  await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
  await expect(page.getByTestId("session-status")).toHaveText("completed");
  await expect(page.getByTestId("diff")).toContainText("+written by the e2e fleet");
  await expect(page.getByTestId("diff-files")).toContainText(".txt");
  await expect(page.getByTestId("event-row").first()).toBeVisible();
  await page.screenshot({ path: `${ARTIFACTS}/session-detail.png`, fullPage: true });
  expect(errors, errors.join("\n")).toEqual([]);
});

test("a running session is cancelled from its page and the page follows live", async ({ page, request }) => {
  test.setTimeout(120_000);
  const errors = watchErrors(page);
  const created = await request.post("/api/v1/sessions", {
    data: {
      title: "wait forever",
      prompt: "Think about it for a long time [hang]",
      workspace: REPO,
      max_attempts: 1,
    },
  });
  expect(created.status(), await created.text()).toBe(201);
  const session = await created.json();

  await page.goto(`/sessions/${session.id}`);
  // Only the live stream can move this from queued to running: the page is not reloaded.
  await expect(page.getByTestId("session-status")).toHaveText("running", { timeout: 60_000 });
  const rowsBefore = await page.getByTestId("event-row").count();
  await page.getByTestId("cancel").click();
  await expect(page.getByTestId("session-status")).toHaveText("cancelled", { timeout: 60_000 });
  expect(await page.getByTestId("event-row").count()).toBeGreaterThan(rowsBefore);
  await page.screenshot({ path: `${ARTIFACTS}/session-cancelled.png`, fullPage: true });
  const stored = await (await request.get(`/api/v1/sessions/${session.id}`)).json();
  expect(stored.status).toBe("cancelled");
  expect(errors, errors.join("\n")).toEqual([]);
});

test("the status page renders without JavaScript", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const response = await page.goto("/status");
  expect(response?.status()).toBe(200);
  await expect(page.getByTestId("status-running")).toBeVisible();
  await expect(page.getByTestId("status-fleet")).toContainText("http://127.0.0.1");
  await expect(page.locator('meta[http-equiv="refresh"]')).toHaveCount(1);
  await page.screenshot({ path: `${ARTIFACTS}/status.png`, fullPage: true });
  await context.close();
});

test("every page passes an accessibility check (axe-core, WCAG 2 A/AA)", async ({ page, request }) => {
  test.setTimeout(120_000);
  const sessions = await (await request.get("/api/v1/sessions?limit=1")).json();
  const tasks = await (await request.get("/api/v1/tasks?limit=1")).json();
  const paths = ["/", "/sessions", "/tasks", "/agents", "/agents/build", "/status"];
  if (sessions.items.length) paths.push(`/sessions/${sessions.items[0].id}`);
  if (tasks.items.length) paths.push(`/tasks/${tasks.items[0].id}`);
  for (const path of paths) {
    await page.goto(path);
    let axe = new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa"]);
    // The one deliberate exception: /status is a wall screen that must refresh itself (nobody
    // stands at it to press reload); every other rule still applies to it.
    if (path === "/status") axe = axe.disableRules(["meta-refresh"]);
    const results = await axe.analyze();
    const found = results.violations.map(
      (v) => `${path}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
    );
    expect(found, found.join("\n")).toEqual([]);
    const name = path === "/" ? "overview" : path.slice(1).replace(/\//g, "-").slice(0, 40);
    await page.screenshot({ path: `${ARTIFACTS}/page-${name}.png`, fullPage: true });
  }
});

test("the OpenAPI document validates", async ({ request }) => {
  const response = await request.get("/api/v1/openapi.json");
  expect(response.status()).toBe(200);
  const document = await response.json();
  expect(document.openapi).toMatch(/^3\.1\./);
  // Throws with the first problem found if the document is not a valid OpenAPI description.
  await SwaggerParser.validate(structuredClone(document));
  expect(Object.keys(document.paths)).toEqual(
    expect.arrayContaining(["/api/v1/sessions", "/api/v1/tasks", "/api/v1/agents", "/api/v1/events"]),
  );
});
