// A wasi:http/incoming-handler written against wasi:http/types directly: the
// module exports `incomingHandler`, so componentize-js links it instead of
// StarlingMonkey's fetch-event support. Built with `jco componentize`.
//   /                      hello
//   /echo/info             the request as JSON (method, path, authority, headers, body length)
//   /echo/body             the request body streamed back (blocking reads and writes)
//   /status?code=N         status N
//   /headers               repeated response headers
//   /trailers              a body followed by response trailers
//   anything else          404

import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';

const encoder = new TextEncoder();
// The most blocking-write-and-flush takes at once.
const WRITE_MAX = 4096;

function methodName(method) {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

function fields(entries) {
  return Fields.fromList(entries.map(([name, value]) => [name, encoder.encode(value)]));
}

// Calls `onChunk` with each chunk of the body, then finishes it.
function readBody(incomingBody, onChunk) {
  const stream = incomingBody.stream();
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(65536n);
    } catch (e) {
      if (e.payload && e.payload.tag === 'closed') break;
      throw e;
    }
    onChunk(chunk);
  }
  stream[Symbol.dispose]();
}

function writeAll(stream, bytes) {
  for (let start = 0; start < bytes.length; start += WRITE_MAX) {
    stream.blockingWriteAndFlush(bytes.subarray(start, start + WRITE_MAX));
  }
}

function respond(responseOut, status, headers, text, trailers) {
  const response = new OutgoingResponse(fields(headers));
  response.setStatusCode(status);
  const outgoing = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  if (text) {
    const stream = outgoing.write();
    writeAll(stream, encoder.encode(text));
    stream[Symbol.dispose]();
  }
  OutgoingBody.finish(outgoing, trailers);
}

function echoInfo(request, responseOut) {
  const headers = {};
  for (const [name, value] of request.headers().entries()) {
    (headers[name] ??= []).push(new TextDecoder('latin1').decode(value));
  }
  let length = 0;
  readBody(request.consume(), (chunk) => {
    length += chunk.length;
  });
  const report = {
    authority: request.authority() ?? null,
    body_length: length,
    headers: Object.fromEntries(Object.keys(headers).sort().map((k) => [k, headers[k]])),
    method: methodName(request.method()),
    path_with_query: request.pathWithQuery() ?? null,
  };
  respond(responseOut, 200, [['content-type', 'application/json']], JSON.stringify(report));
}

function echoBody(request, responseOut) {
  const response = new OutgoingResponse(fields([['content-type', 'application/octet-stream']]));
  const outgoing = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  const sink = outgoing.write();
  readBody(request.consume(), (chunk) => writeAll(sink, chunk));
  sink[Symbol.dispose]();
  OutgoingBody.finish(outgoing, undefined);
}

function handle(request, responseOut) {
  const url = new URL(request.pathWithQuery() ?? '/', 'http://app.test');
  switch (url.pathname) {
    case '/':
      return respond(responseOut, 200, [['content-type', 'text/plain']], 'hello from componentize-js\n');
    case '/echo/info':
      return echoInfo(request, responseOut);
    case '/echo/body':
      return echoBody(request, responseOut);
    case '/status': {
      const code = Number(url.searchParams.get('code') ?? '200');
      return respond(responseOut, code, [], code === 204 || code === 304 ? '' : `status ${code}\n`);
    }
    case '/headers':
      return respond(
        responseOut,
        200,
        [
          ['set-cookie', 'a=1; Path=/'],
          ['set-cookie', 'b=2; Path=/'],
          ['x-multi', 'first'],
          ['x-multi', 'second'],
        ],
        'repeated headers\n',
      );
    case '/trailers':
      // Named in a `trailer` header: HTTP/1.1 servers (hyper) send only declared trailers.
      return respond(
        responseOut,
        200,
        [['trailer', 'x-trailer']],
        'a body followed by trailers\n',
        fields([['x-trailer', 'sent last']]),
      );
    default:
      return respond(responseOut, 404, [['content-type', 'text/plain']], `no route for ${url.pathname}\n`);
  }
}

export const incomingHandler = { handle };
