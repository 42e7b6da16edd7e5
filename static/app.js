// The test page: every form calls the API with fetch(), carrying the token header, and shows
// the output live (ndjson), then status, exit code and duration. No external requests.
"use strict";

const body = document.body;
const apiUrl = body.dataset.apiUrl;
const jobsUrl = body.dataset.jobsUrl;
const tokenHeader = body.dataset.tokenHeader;
const tokenField = document.getElementById("token");
const TOKEN_KEY = "airflow-rest-bridge-token";

if (tokenField) {
  tokenField.value = sessionStorage.getItem(TOKEN_KEY) || "";
  tokenField.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, tokenField.value));
}

function headers(extra) {
  const result = Object.assign({}, extra);
  if (tokenField && tokenField.value) result[tokenHeader] = tokenField.value;
  return result;
}

// Unchecked boxes and empty text fields are left out, as a script calling the API would.
function formBody(form) {
  const data = new FormData();
  for (const field of form.elements) {
    if (!field.name) continue;
    if (field.type === "checkbox") {
      if (field.checked) data.append(field.name, "true");
    } else if (field.type === "file") {
      if (field.files.length) data.append(field.name, field.files[0]);
    } else if (field.value !== "") {
      data.append(field.name, field.value);
    }
  }
  return data;
}

function describeError(status, envelope) {
  const said = envelope && typeof envelope.output === "string" ? envelope.output : "";
  // The seed's body for a missing or wrong token; anything else (a named token without the
  // API's scope) says itself what was refused.
  if (status === 403 && (!said || said === "Token Authentication Failed")) {
    return "Token rejected (403): enter the right token in the Token field above.";
  }
  return `Error ${status}: ${said || "see the output below"}`;
}

function summary(result) {
  const parts = [result.status];
  if (result.exit_code !== undefined) parts.push(`exit code ${result.exit_code}`);
  if (result.duration_seconds !== undefined) parts.push(`${result.duration_seconds} s`);
  if (result.warning) parts.push(`warning: ${result.warning}`);
  return parts.join(" · ");
}

function showEnvelope(ui, status, envelope) {
  const ok = status < 400 && envelope.status === "OK";
  ui.status.textContent = ok ? summary(envelope) : describeError(status, envelope);
  ui.status.className = `status ${ok ? "ok" : "error"}`;
  const shown = Object.assign({}, envelope);
  ui.output.textContent = JSON.stringify(shown, null, 2);
}

// One event a line of an application/x-ndjson response, to onEvent, as the lines arrive.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines) {
      if (line) onEvent(JSON.parse(line));
    }
  }
}

// A streamed call is a job (its first record names it): Cancel stops the job, not only the
// connection, which would leave its command waiting reattach_wait seconds for a reader.
async function streamCall(form, ui) {
  const controller = new AbortController();
  let jobId = null;
  ui.cancel.onclick = () => {
    controller.abort();
    if (jobId) {
      fetch(`${jobsUrl}/${encodeURIComponent(jobId)}`, { method: "DELETE", headers: headers({}) })
        .then(() => loadJobs())
        .catch(() => {});
    }
  };
  const url = `${apiUrl}?api=${encodeURIComponent(form.dataset.api)}&stream=ndjson`;
  const response = await fetch(url, {
    method: "POST",
    headers: headers({ Accept: "application/x-ndjson" }),
    body: formBody(form),
    signal: controller.signal,
  });
  const type = response.headers.get("Content-Type") || "";
  if (!type.startsWith("application/x-ndjson")) {
    showEnvelope(ui, response.status, await response.json());
    return;
  }
  ui.status.textContent = "running…";
  await readEvents(response, (event) => {
    if (event.event === "job") {
      jobId = event.job_id;
    } else if (event.event === "output") {
      ui.output.append(document.createTextNode(event.text));
    } else if (event.event === "result") {
      const ok = event.status === "OK";
      ui.status.textContent = summary(event);
      ui.status.className = `status ${ok ? "ok" : "error"}`;
    }
  });
}

async function plainCall(form, ui) {
  const controller = new AbortController();
  ui.cancel.onclick = () => controller.abort();
  const url = `${apiUrl}?api=${encodeURIComponent(form.dataset.api)}`;
  const response = await fetch(url, {
    method: "POST",
    headers: headers({}),
    body: formBody(form),
    signal: controller.signal,
  });
  showEnvelope(ui, response.status, await response.json());
}

// Uploads go through XMLHttpRequest: fetch() cannot report upload progress.
function uploadCall(form, ui) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${apiUrl}?api=deploy_dag`);
    for (const [name, value] of Object.entries(headers({}))) request.setRequestHeader(name, value);
    const progress = form.querySelector("progress.upload");
    progress.hidden = false;
    progress.value = 0;
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = (100 * event.loaded) / event.total;
    };
    request.onload = () => {
      progress.value = 100;
      let envelope;
      try {
        envelope = JSON.parse(request.responseText);
      } catch (error) {
        reject(error);
        return;
      }
      showEnvelope(ui, request.status, envelope);
      if (request.status < 400 && envelope.output) {
        const found = envelope.output.dag_ids.join(", ");
        const kept = envelope.output.backup ? `; previous version kept at ${envelope.output.backup}` : "";
        ui.status.textContent = `Deployed ${envelope.output.file}: DAGs ${found}${kept}`;
      }
      resolve();
    };
    request.onerror = () => reject(new Error("the upload failed"));
    request.onabort = () => reject(new DOMException("cancelled", "AbortError"));
    ui.cancel.onclick = () => request.abort();
    request.send(formBody(form));
  });
}

// The filter box: a hundred commands stay findable. Every word typed must be in the name.
const filterField = document.getElementById("filter");
if (filterField) {
  filterField.addEventListener("input", () => {
    const words = filterField.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const item of document.querySelectorAll("[data-name]")) {
      const name = item.dataset.name.toLowerCase();
      item.hidden = !words.every((word) => name.includes(word));
    }
  });
}

// The form as a curl command: the values typed so far, the token as $BRIDGE_TOKEN (never
// its value), single-quoted for a POSIX shell.
function shellQuote(text) {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function curlOf(form) {
  const params = new URLSearchParams({ api: form.dataset.api });
  const words = ["curl"];
  const files = [];
  for (const [name, value] of formBody(form).entries()) {
    if (typeof value === "string") params.append(name, value);
    else files.push(`${name}=@${value.name}`);
  }
  if (form.dataset.streams === "yes" && !files.length) {
    params.append("stream", "true");
    words.push("-N");
  }
  if (tokenField) words.push("-H", `"${tokenHeader}: $BRIDGE_TOKEN"`);
  for (const file of files) words.push("-F", shellQuote(file));
  words.push(shellQuote(`${body.dataset.origin}${apiUrl}?${params}`));
  return words.join(" ");
}

// Jobs: started with "Run as a job" (detach=true), they run on without this page. The list
// is read on demand; following one replays its output from the start, then live.
const jobsList = document.getElementById("jobs-list");
const jobStatus = document.getElementById("job-status");
const jobOutput = document.getElementById("job-output");
let following = null; // the AbortController of the job followed now

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function loadJobs() {
  const response = await fetch(jobsUrl, { headers: headers({}) });
  if (!response.ok) {
    jobStatus.textContent = describeError(response.status, await response.json());
    jobStatus.className = "status error";
    return;
  }
  const { jobs } = await response.json();
  jobsList.replaceChildren();
  for (const job of jobs) {
    const row = jobsList.insertRow();
    row.dataset.jobId = job.job_id;
    cell(row, job.job_id).classList.add("job-id");
    cell(row, job.api);
    cell(row, job.token, "started-by");
    cell(row, job.state, `state state-${job.state}`);
    cell(row, `${job.output_size} bytes${job.output_cut ? " (cut)" : ""}`);
    const actions = cell(row, "", "actions");
    actions.append(actionButton("Follow", "follow", () => followJob(job.job_id)));
    if (job.state === "queued" || job.state === "running") {
      actions.append(actionButton("Cancel", "cancel-job", () => cancelJob(job.job_id)));
    }
  }
}

function actionButton(label, className, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = label;
  button.addEventListener("click", onClick);
  return button;
}

async function followJob(jobId) {
  if (following) following.abort();
  const controller = new AbortController();
  following = controller;
  jobOutput.textContent = "";
  jobStatus.textContent = `following job ${jobId}…`;
  jobStatus.className = "status";
  try {
    const response = await fetch(`${jobsUrl}/${encodeURIComponent(jobId)}/output?stream=ndjson`, {
      headers: headers({ Accept: "application/x-ndjson" }),
      signal: controller.signal,
    });
    if (!response.ok) {
      jobStatus.textContent = describeError(response.status, await response.json());
      jobStatus.className = "status error";
      return;
    }
    let listed = false; // the list shows the job running once its output comes
    await readEvents(response, (event) => {
      if (event.event === "output") {
        jobOutput.append(document.createTextNode(event.text));
        if (!listed) {
          listed = true;
          loadJobs();
        }
      } else if (event.event === "result") {
        jobStatus.textContent = `job ${jobId}: ${event.state} · ${summary(event)}`;
        jobStatus.className = `status ${event.state === "succeeded" ? "ok" : "error"}`;
      }
    });
    await loadJobs();
  } catch (error) {
    if (error.name !== "AbortError") {
      jobStatus.textContent = `Following failed: ${error.message}`;
      jobStatus.className = "status error";
    }
  }
}

async function cancelJob(jobId) {
  const response = await fetch(`${jobsUrl}/${encodeURIComponent(jobId)}`, {
    method: "DELETE",
    headers: headers({}),
  });
  const job = await response.json();
  if (!response.ok) {
    jobStatus.textContent = describeError(response.status, job);
    jobStatus.className = "status error";
  }
  await loadJobs();
}

async function detachCall(form, ui) {
  const params = new URLSearchParams({ api: form.dataset.api, detach: "true" });
  const response = await fetch(`${apiUrl}?${params}`, {
    method: "POST",
    headers: headers({}),
    body: formBody(form),
  });
  const envelope = await response.json();
  if (response.status !== 202) {
    showEnvelope(ui, response.status, envelope);
    return;
  }
  ui.status.textContent = `Job ${envelope.job_id} started: follow or cancel it under Jobs.`;
  ui.status.className = "status ok";
  await loadJobs();
  document.getElementById("jobs").scrollIntoView();
  followJob(envelope.job_id);
}

// The dag_id fields offer the DAGs list_dags names for this token (a token confined to some
// DAGs is answered with its own only), asked once per token, when a dag_id field is first
// entered: a page that is only looked at runs no command. Nothing is offered when refused.
let dagIdsFor = null;
async function loadDagIds() {
  const token = tokenField ? tokenField.value : "";
  if (dagIdsFor === token) return;
  dagIdsFor = token;
  const choices = document.getElementById("dag-ids");
  choices.replaceChildren();
  try {
    const params = new URLSearchParams({ api: "list_dags", output: "json" });
    const response = await fetch(`${apiUrl}?${params}`, { headers: headers({}) });
    const envelope = await response.json();
    if (!response.ok || !Array.isArray(envelope.data)) return;
    for (const row of envelope.data) {
      const option = document.createElement("option");
      option.value = row.dag_id;
      choices.append(option);
    }
  } catch (error) {
    dagIdsFor = null; // asked again at the next field entered
  }
}

for (const field of document.querySelectorAll("input[list=dag-ids]")) {
  field.addEventListener("focus", loadDagIds);
}
document.getElementById("jobs-refresh").addEventListener("click", loadJobs);
if (!tokenField || tokenField.value) loadJobs(); // without the token it would be a 403

for (const form of document.querySelectorAll("form.call")) {
  const copy = form.querySelector("button.copy-curl");
  const shown = form.querySelector(".curl");
  copy.addEventListener("click", async () => {
    const command = curlOf(form);
    shown.querySelector("code").textContent = command;
    shown.hidden = false;
    try {
      await navigator.clipboard.writeText(command);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy as curl (select the text below)";
    }
  });
  const ui = {
    run: form.querySelector("button[type=submit]"),
    cancel: form.querySelector("button.cancel"),
    status: form.querySelector(".status"),
    output: form.querySelector(".output"),
  };
  const detach = form.querySelector("button.detach");
  if (detach) {
    detach.addEventListener("click", async () => {
      if (!form.reportValidity()) return;
      ui.output.textContent = "";
      try {
        await detachCall(form, ui);
      } catch (error) {
        ui.status.textContent = `Request failed: ${error.message}`;
        ui.status.className = "status error";
      }
    });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    ui.output.textContent = "";
    ui.status.textContent = "starting…";
    ui.status.className = "status";
    ui.run.disabled = true;
    ui.cancel.disabled = false;
    try {
      if (form.dataset.upload === "yes") await uploadCall(form, ui);
      else if (form.dataset.streams === "yes") await streamCall(form, ui);
      else await plainCall(form, ui);
    } catch (error) {
      const cancelled = error.name === "AbortError";
      ui.status.textContent = cancelled
        ? "Cancelled: the request was dropped and the command stopped."
        : `Request failed: ${error.message}`;
      ui.status.className = `status ${cancelled ? "cancelled" : "error"}`;
    } finally {
      ui.run.disabled = false;
      ui.cancel.disabled = true;
    }
  });
}
