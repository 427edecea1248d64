import { test, expect, type Page, type APIRequestContext } from "./fixtures";

// (Named to run after dashboard.spec.ts, which expects an empty store.)
// A budget breach as an operator sees it, in real Chromium, against the real orchestrator and a
// REAL OpenCode server (testkit's e2e-fleet). scripts/test.sh caps a session at 1 000 000 tokens
// (`[guardrails.session] max_tokens`); a prompt with `[budget]` makes the fake LLM report
// 10 000 000 input tokens on its first step, so only that session breaches: the engine aborts it
// and marks it `budget_exceeded`, and the dashboard says so.

const ARTIFACTS = "end2end/artifacts";
const REPO = process.env.E2E_REPO ?? "";
const SESSION_CAP = "1000000";

test.describe.configure({ mode: "serial" });

function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return errors;
}

async function stored(request: APIRequestContext, id: string) {
  const response = await request.get(`/api/v1/sessions/${id}`);
  expect(response.status(), await response.text()).toBe(200);
  return response.json();
}

test("a session past its token budget is stopped and its page says why", async ({ page, request }) => {
  test.setTimeout(150_000);
  const errors = watchErrors(page);
  const created = await request.post("/api/v1/sessions", {
    data: {
      title: "budget: the big spender",
      prompt: "Spend the whole budget [budget]",
      workspace: REPO,
      // A guardrail stop is final: the second attempt must never run.
      max_attempts: 2,
    },
  });
  expect(created.status(), await created.text()).toBe(201);
  const session = await created.json();

  // Opened while it runs: the page follows live and shows the stop when it happens.
  await page.goto(`/sessions/${session.id}`);
  const banner = page.getByTestId("stop-banner");
  await expect(banner).toBeVisible({ timeout: 90_000 });
  await expect(banner).toHaveAttribute("data-code", "budget_exceeded");
  await expect(page.getByTestId("stop-code")).toHaveText("budget_exceeded");
  await expect(page.getByTestId("stop-message")).toContainText("budget exceeded: the session spent");
  await expect(page.getByTestId("stop-message")).toContainText(`over its cap of ${SESSION_CAP} tokens`);
  await expect(page.getByTestId("stop-figures")).toContainText("tokens");
  await expect(page.getByTestId("session-status")).toContainText("failed");
  await expect(page.getByTestId("session-stop-code")).toContainText("budget_exceeded");
  await expect(
    page.locator('[data-testid="event-row"][data-event-type$="guardrail_stopped"]'),
  ).toHaveCount(1);
  await page.screenshot({ path: `${ARTIFACTS}/budget-breach.png`, fullPage: true });

  // Stored typed, and not retried.
  const done = await stored(request, session.id);
  expect(done.status).toBe("failed");
  expect(done.attempt).toBe(1);
  expect(done.stop_reason.code).toBe("budget_exceeded");
  expect(done.stop_reason.scope).toBe("session");

  // The sessions list marks it with the code, not just "failed".
  await page.goto("/sessions?status=failed");
  const row = page
    .locator('[data-testid="session-row"]')
    .filter({ has: page.locator(`a[href="/sessions/${session.id}"]`) });
  await expect(row.getByTestId("row-stop-code")).toContainText("budget_exceeded");

  // The overview lists it among the failures with its code, and shows the configured caps.
  await page.goto("/");
  await expect(
    page.locator('[data-testid="failure-row"]').filter({ has: page.locator(`a[href="/sessions/${session.id}"]`) }),
  ).toContainText("budget_exceeded");
  const sessionBudget = page.locator('[data-testid="budget-row"][data-scope="session"]');
  await expect(sessionBudget).toContainText(SESSION_CAP);
  await expect(page.getByTestId("runaway-limits")).toContainText("steps");
  await page.getByTestId("guardrails").scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${ARTIFACTS}/guardrails-overview.png`, fullPage: true });
  expect(errors, errors.join("\n")).toEqual([]);
});
