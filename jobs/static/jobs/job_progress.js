// Keeps a job page's progress current: polls the job's progress view every second
// until the job has finished. The page is complete without it.
"use strict";
{
    const root = document.getElementById("job");
    const fmt = new Intl.NumberFormat("en-US");
    const set = (id, text) => { const el = document.getElementById(id); if (el) { el.textContent = text; } };
    const duration = (s) => s === null ? "—" : (s >= 90 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`);

    function render(p) {
        document.getElementById("job-bar").value = p.percent;
        set("job-state", p.state_label + (p.cancel_requested && !p.finished ? " (cancelling)" : ""));
        set("job-done", fmt.format(p.done));
        set("job-total", fmt.format(p.total));
        set("job-percent", p.percent.toFixed(1));
        set("job-affected", fmt.format(p.affected));
        set("job-rate", fmt.format(Math.round(p.rate)));
        set("job-eta", duration(p.eta_seconds));
        set("job-batches", fmt.format(p.batches));
        set("job-receipts", fmt.format(p.receipts));
        set("job-error", p.error || "—");
        root.dataset.state = p.state;
        const cancel = document.getElementById("job-cancel");
        if (cancel && p.finished) { cancel.hidden = true; }
    }

    async function poll() {
        try {
            const response = await fetch(root.dataset.progressUrl, {headers: {"Accept": "application/json"}});
            if (response.ok) {
                const p = await response.json();
                render(p);
                if (p.finished) { return; }
            }
        } catch (e) { /* a missed poll: try again */ }
        setTimeout(poll, 1000);
    }

    if (root) { poll(); }
}
