import { test, expect } from "./fixtures";

const ARTIFACTS = "end2end/artifacts";

// A browser without the shared session: strangers are sent to the sign-in form, a wrong password
// is refused with a message, the right one lands where the user was going, signing out ends it.
test.describe("sign-in", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("strangers sign in through the form and out again", async ({ page }) => {
    await page.goto("/sessions");
    await expect(page).toHaveURL(/\/login\?next=%2Fsessions$/);
    await page.getByLabel("username").fill(process.env.E2E_USER ?? "");
    await page.getByLabel("password").fill("certainly not the password");
    await page.getByRole("button", { name: "[ SIGN IN ]" }).click();
    await expect(page.getByTestId("login-error")).toHaveText("wrong username or password");
    await page.screenshot({ path: `${ARTIFACTS}/login.png`, fullPage: true });

    await page.getByLabel("username").fill(process.env.E2E_USER ?? "");
    await page.getByLabel("password").fill(process.env.E2E_PASSWORD ?? "");
    await page.getByRole("button", { name: "[ SIGN IN ]" }).click();
    await expect(page).toHaveURL(/\/sessions$/);
    await expect(page.getByTestId("whoami")).toContainText(`${process.env.E2E_USER} [operator]`);

    await page.getByTestId("sign-out").click();
    await expect(page).toHaveURL(/\/login$/);
    await page.goto("/");
    await expect(page).toHaveURL(/\/login\?next=%2F$/);
  });

  test("the API refuses anonymous calls with a JSON error naming the credential", async ({ playwright, baseURL }) => {
    const anonymous = await playwright.request.newContext({ baseURL });
    const response = await anonymous.get("/api/v1/sessions");
    expect(response.status()).toBe(401);
    expect((await response.json()).error.field).toBe("authorization");
    await anonymous.dispose();
  });
});
