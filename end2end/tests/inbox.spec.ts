import { test, expect, type Page, type APIRequestContext } from "./fixtures";

// The human-in-the-loop inbox as an operator uses it, in real Chromium, against the real
// orchestrator and a REAL OpenCode server (testkit's e2e-fleet): a prompt with `[ask]` makes the
// agent write a file with the `write` tool, which that server asks permission for (`edit: ask`).
// The request must reach /inbox without a reload, be answered "once" from the page, and the
// session must then finish its work.

const ARTIFACTS = "end2end/artifacts";
const REPO = process.env.E2E_REPO ?? "";

test.describe.configure({ mode: "serial" });

/// Fails the test on any page error or console error (hydration problems show up there).
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return errors;
}

async function sessionStatus(request: APIRequestContext, id: string): Promise<string> {
  const response = await request.get(`/api/v1/sessions/${id}`);
  expect(response.status(), await response.text()).toBe(200);
  return (await response.json()).status;
}

test("a permission request reaches the inbox live and is answered once from the page", async ({
  page,
  request,
}) => {
  test.setTimeout(150_000);
  const errors = watchErrors(page);

  // The page is open (and hydrated) before the agent asks anything.
  await page.goto("/inbox");
  await expect(page.getByRole("heading", { name: "INBOX", exact: true })).toBeVisible();
  await page.waitForLoadState("networkidle");

  const created = await request.post("/api/v1/sessions", {
    data: {
      title: "inbox: save the release notes",
      prompt: "Save the release notes [ask]",
      workspace: REPO,
      max_attempts: 1,
    },
  });
  expect(created.status(), await created.text()).toBe(201);
  const session = await created.json();
  const ofSession = page.locator(`a[href="/sessions/${session.id}"]`);

  // Live: the item appears on the open page (polled every 2 s), no reload.
  const pending = page
    .locator('[data-testid="inbox-open"] [data-testid="inbox-item"]')
    .filter({ has: ofSession });
  await expect(pending).toBeVisible({ timeout: 90_000 });
  await expect(pending).toHaveAttribute("data-status", /^(pending|escalated)$/);
  await expect(pending.getByTestId("inbox-kind")).toHaveText("PERMISSION");
  await expect(pending.getByTestId("inbox-permission")).toHaveText("edit");
  await expect(pending.getByTestId("inbox-patterns")).toContainText("save-the-release-notes-ask.txt");
  await expect(pending.getByTestId("reply-once")).toBeVisible();
  await expect(pending.getByTestId("reply-always")).toBeVisible();
  await expect(pending.getByTestId("reply-reject")).toBeVisible();
  await page.screenshot({ path: `${ARTIFACTS}/inbox.png`, fullPage: true });

  // The session waits for the answer.
  expect(await sessionStatus(request, session.id)).toBe("running");

  await pending.getByTestId("reply-once").click();
  await expect(page.getByTestId("answer-ok")).toContainText(`answered permission as ${process.env.E2E_USER}`);
  const resolved = page
    .locator('[data-testid="inbox-resolved"] [data-testid="inbox-item"]')
    .filter({ has: ofSession });
  await expect(resolved).toHaveAttribute("data-status", "answered", { timeout: 15_000 });
  await expect(resolved.getByTestId("inbox-resolution")).toContainText(
    `answered: once · by ${process.env.E2E_USER}`,
  );
  await expect(resolved.getByTestId("reply-once")).toHaveCount(0);
  await expect(
    page.locator('[data-testid="inbox-open"] [data-testid="inbox-item"]').filter({ has: ofSession }),
  ).toHaveCount(0);
  await page.screenshot({ path: `${ARTIFACTS}/inbox-answered.png`, fullPage: true });

  // The answer was relayed: the agent wrote its file and the session completed.
  await expect.poll(() => sessionStatus(request, session.id), { timeout: 90_000 }).toBe("completed");
  await ofSession.first().click();
  await page.waitForURL(`**/sessions/${session.id}`);
  await expect(page.getByTestId("session-status")).toHaveText("completed");
  await expect(page.locator('[data-testid="event-row"][data-event-type="inbox.asked"]')).toHaveCount(1);
  await expect(page.locator('[data-testid="event-row"][data-event-type="inbox.answered"]')).toHaveCount(1);
  await expect(page.getByTestId("diff")).toContainText("+written by the e2e fleet, with permission");

  // The item reads back answered through the API too, by the signed-in operator.
  const all = await request.get("/api/v1/inbox?status=all");
  expect(all.status()).toBe(200);
  const item = (await all.json()).items.find((i: { session: string }) => i.session === session.id);
  expect(item.status).toBe("answered");
  expect(item.resolution.by).toBe(process.env.E2E_USER);
  expect(item.resolution.answer.reply).toBe("once");
  expect(errors, errors.join("\n")).toEqual([]);
});

test("an answer to an unknown item is refused by the server function", async ({ page }) => {
  await page.goto("/inbox");
  await page.waitForLoadState("networkidle");
  // As the page's own forms post it (with the CSRF token of the header's sign-out form).
  const status = await page.evaluate(async () => {
    const form = new URLSearchParams({ id: "00000000-0000-4000-8000-000000000000", reply: "once" });
    const input = document.querySelector('input[name="csrf_token"]') as HTMLInputElement | null;
    if (input) form.set("csrf_token", input.value);
    const response = await fetch("/api/sf/answer_inbox", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: form,
    });
    return response.status;
  });
  expect(status).toBe(404);
});
