// A Spin JS app that uses Spin's key-value store and variables, through the
// interfaces Spin's JS SDK packages import (`fermyon:spin/key-value@2.0.0`,
// as @spinframework/spin-kv does, and `fermyon:spin/variables@2.0.0`, as
// @spinframework/spin-variables does). Those two packages are not on the
// registry this project reaches, so the app imports the interfaces itself;
// its package.json declares their WIT as theirs do (wit/spin.wit).
//   GET /kv                the keys of the default store, as JSON
//   GET /kv/KEY            the value (404 when absent)
//   PUT /kv/KEY            store the request body (204)
//   DELETE /kv/KEY         delete it (204)
//   GET /kv?store=LABEL    ...of store LABEL instead (404 no such store, 403 access denied)
//   GET /var/NAME          the variable NAME (404 undefined, 400 invalid name)

import { Store } from 'fermyon:spin/key-value@2.0.0';
import { get as getVariable } from 'fermyon:spin/variables@2.0.0';

const STATUS_OF_KV_ERROR = { 'no-such-store': 404, 'access-denied': 403, 'store-table-full': 503, other: 500 };
const STATUS_OF_VARIABLE_ERROR = { undefined: 404, 'invalid-name': 400, provider: 502, other: 500 };

function text(status, body) {
  return new Response(body + '\n', { status, headers: { 'content-type': 'text/plain' } });
}

function failure(error, statuses) {
  const payload = error.payload;
  if (payload === undefined || !(payload.tag in statuses)) throw error;
  return text(statuses[payload.tag], payload.val === undefined ? payload.tag : `${payload.tag}: ${payload.val}`);
}

async function keyValue(request, url, key) {
  let store;
  try {
    store = Store.open(url.searchParams.get('store') ?? 'default');
    if (key === '') {
      return new Response(JSON.stringify(store.getKeys().sort()), { headers: { 'content-type': 'application/json' } });
    }
    switch (request.method) {
      case 'GET': {
        const value = store.get(key);
        return value === undefined ? text(404, `no key ${key}`) : new Response(value);
      }
      case 'PUT':
        store.set(key, new Uint8Array(await request.arrayBuffer()));
        return new Response(null, { status: 204 });
      case 'DELETE':
        store.delete(key);
        return new Response(null, { status: 204 });
      default:
        return text(405, 'GET, PUT or DELETE');
    }
  } catch (error) {
    return failure(error, STATUS_OF_KV_ERROR);
  }
}

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname === '/kv' || url.pathname.startsWith('/kv/')) {
    return keyValue(request, url, decodeURIComponent(url.pathname.slice(4)));
  }
  if (url.pathname.startsWith('/var/')) {
    try {
      return text(200, getVariable(url.pathname.slice(5)));
    } catch (error) {
      return failure(error, STATUS_OF_VARIABLE_ERROR);
    }
  }
  return text(404, `no route for ${url.pathname}`);
}

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));
