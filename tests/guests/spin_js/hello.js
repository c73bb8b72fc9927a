// A Spin JS app (Spin's JS SDK: @spinframework/build-tools' `j2w` and
// @spinframework/wasi-http-proxy), written as `spin new http-js` writes one:
// a fetch-event handler, built by StarlingMonkey's fetch-event support.
//   /                      hello
//   /echo/info             the request as JSON (method, path, headers, body length and SHA-256)
//   /echo/body             the request body streamed back
//   /stream?chunks=N&size=M  N chunks of M bytes from a ReadableStream
//   /status?code=N         status N
//   /headers               repeated response headers
//   anything else          404

const encoder = new TextEncoder();

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function echoInfo(request, url) {
  const body = new Uint8Array(await request.arrayBuffer());
  const headers = {};
  for (const [name, value] of request.headers) {
    (headers[name] ??= []).push(value);
  }
  const report = {
    body_length: body.length,
    body_sha256: hex(await crypto.subtle.digest('SHA-256', body)),
    headers: Object.fromEntries(Object.keys(headers).sort().map((k) => [k, headers[k]])),
    method: request.method,
    path_with_query: url.pathname + url.search,
  };
  return new Response(JSON.stringify(report), { headers: { 'content-type': 'application/json' } });
}

function chunks(url) {
  const count = Number(url.searchParams.get('chunks') ?? '64');
  const size = Number(url.searchParams.get('size') ?? '1000');
  let index = 0;
  const stream = new ReadableStream({
    pull(controller) {
      if (index === count) {
        controller.close();
        return;
      }
      controller.enqueue(new Uint8Array(size).fill(65 + (index % 26)));
      index += 1;
    },
  });
  return new Response(stream, { headers: { 'content-type': 'application/octet-stream' } });
}

async function handle(request) {
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/':
      return new Response('hello from a Spin JS app\n', { headers: { 'content-type': 'text/plain' } });
    case '/echo/info':
      return echoInfo(request, url);
    case '/echo/body':
      return new Response(request.body, { headers: { 'content-type': 'application/octet-stream' } });
    case '/stream':
      return chunks(url);
    case '/status': {
      const code = Number(url.searchParams.get('code') ?? '200');
      return new Response(code === 204 || code === 304 ? null : `status ${code}\n`, { status: code });
    }
    case '/headers': {
      const headers = new Headers();
      headers.append('set-cookie', 'a=1; Path=/');
      headers.append('set-cookie', 'b=2; Path=/');
      headers.append('x-multi', 'first');
      headers.append('x-multi', 'second');
      return new Response('repeated headers\n', { headers });
    }
    default:
      return new Response(`no route for ${url.pathname}\n`, { status: 404 });
  }
}

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));
