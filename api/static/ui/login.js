"use strict";
// The login page: check the token against the API, keep it in this tab, go where we came from.

(() => {
  const message = gf.$("login-message");
  const said = sessionStorage.getItem("ganforge.login-message");
  if (said) {
    message.textContent = said;
    message.hidden = false;
    sessionStorage.removeItem("ganforge.login-message");
  }

  function next() {
    const target = new URLSearchParams(location.search).get("next") || "/ui/";
    // Only a page of this dashboard: never an address someone put in a link.
    return target.startsWith("/ui/") && !target.startsWith("//") ? target : "/ui/";
  }

  gf.$("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = gf.$("token").value.trim();
    const response = await fetch("/api/v1/jobs?limit=1", {
      headers: { Authorization: `Bearer ${value}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      let detail = `HTTP ${response.status}`;
      try {
        detail = (await response.json()).detail || detail;
      } catch (_) {
        // not a problem document: keep the status
      }
      message.textContent = `Not logged in: ${detail}`;
      message.hidden = false;
      return;
    }
    gf.setToken(value);
    location.assign(next());
  });
})();
