/** The local chat page: one file, no build step, talks to the HTTP API in http-server.ts. */
export const CHAT_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tunebot</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; background: #f6f7f9; }
  header { padding: 10px 16px; background: #1f6feb; color: white; font-weight: 600; }
  #model { padding: 4px 16px; background: #eef3fb; color: #345; font-size: 13px; border-bottom: 1px solid #dde; }
  #model:empty { display: none; }
  #log { flex: 1; overflow-y: auto; padding: 16px; }
  .turn { max-width: 75%; margin: 6px 0; padding: 8px 12px; border-radius: 10px; white-space: pre-wrap; }
  .user { background: #dbe9ff; margin-left: auto; }
  .bot { background: white; border: 1px solid #dde; }
  form { display: flex; gap: 8px; padding: 12px 16px; background: white; border-top: 1px solid #dde; }
  #text { flex: 1; padding: 8px; font: inherit; }
  button, label.file { padding: 8px 14px; font: inherit; cursor: pointer; }
  label.file input { display: none; }
  .attachment { margin-top: 8px; }
  .attachment img { display: block; max-width: 100%; margin-top: 6px; border: 1px solid #dde; }
</style>
</head>
<body>
<header>tunebot: local chat <small>(/help lists the commands)</small></header>
<div id="model" aria-live="polite"></div>
<div id="log" aria-live="polite"></div>
<form id="form">
  <input id="text" autocomplete="off" placeholder="Ask a question, or /faq list, /model status ..." autofocus>
  <button id="send" type="submit">Send</button>
  <label class="file" title="faq import">Import FAQ<input id="file" type="file" accept=".csv,.json,.jsonl,.yaml,.yml,.md,.markdown"></label>
</form>
<script>
const log = document.getElementById('log');
const userId = localStorage.getItem('tunebot-user') || ('web-' + Math.random().toString(36).slice(2, 10));
localStorage.setItem('tunebot-user', userId);

function bubble(kind, text) {
  const div = document.createElement('div');
  div.className = 'turn ' + kind;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

async function stream(response, target) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\\n\\n')) !== -1) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = (event.match(/^event: (.*)$/m) || [])[1] || 'message';
      const data = JSON.parse((event.match(/^data: (.*)$/m) || [])[1] || '{}');
      if (name === 'message') target.append(data.text);
      if (name === 'file') target.append(attachment(data));
      if (name === 'error') target.append('\\n[error] ' + data.error);
      log.scrollTop = log.scrollHeight;
    }
  }
}

/** A file the reply carried: its title, a link that downloads it, and a PNG shown as a picture. */
function attachment(file) {
  const box = document.createElement('div');
  box.className = 'attachment';
  if (file.title) box.append(file.title + ' ');
  const link = document.createElement('a');
  link.href = file.url;
  link.download = file.name;
  link.textContent = file.name + ' (' + file.size.toLocaleString('en') + ' bytes)';
  box.append(link);
  if (file.contentType === 'image/png') {
    const picture = document.createElement('img');
    picture.src = file.url;
    picture.alt = file.title || file.name;
    box.append(picture);
  }
  return box;
}

/** The live model's last evaluation (GET /api/model), on load and after each reply, which may have changed it. */
async function showModel() {
  const line = document.getElementById('model');
  try {
    const response = await fetch('/api/model');
    line.textContent = response.ok ? (await response.json()).summary : '';
  } catch (error) {
    line.textContent = '[could not read the model figures: ' + error.message + ']';
  }
}
showModel();

document.getElementById('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = document.getElementById('text');
  const text = input.value;
  if (!text.trim()) return;
  input.value = '';
  bubble('user', text);
  await send(bubble('bot', ''), () => fetch('/api/messages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId, text }) }));
});

/** Runs one request into a bot bubble; an HTTP or network failure is shown there too. */
async function send(reply, request) {
  try {
    const response = await request();
    if (!response.ok) reply.textContent = (await response.json()).error;
    else await stream(response, reply);
  } catch (error) {
    reply.textContent = '[could not reach tunebot: ' + error.message + ']';
  }
  reply.dataset.done = 'true';
  showModel();
}

document.getElementById('file').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  bubble('user', '/faq import ' + file.name);
  event.target.value = '';
  await send(bubble('bot', ''), () => fetch('/api/upload?userId=' + encodeURIComponent(userId) + '&name=' + encodeURIComponent(file.name), { method: 'POST', body: file }));
});
</script>
</body>
</html>
`;
