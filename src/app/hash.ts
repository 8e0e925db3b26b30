/**
 * The URL hash as a route and a query: `#/lab?task=spam` is the route `#/lab` with `task=spam`, so
 * a link opens the same set-up (tensorflow/playground keeps every setting in the URL the same way).
 */
export interface HashState {
  route: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): HashState {
  const q = hash.indexOf('?');
  return {
    route: q < 0 ? hash : hash.slice(0, q),
    params: new URLSearchParams(q < 0 ? '' : hash.slice(q + 1)),
  };
}

export function formatHash(route: string, params: URLSearchParams): string {
  const q = params.toString();
  return q ? `${route}?${q}` : route;
}

/** The hash with one query parameter set, the route (default `fallback`) and other parameters kept. */
export function hashWithParam(hash: string, name: string, value: string, fallback = '#/lab'): string {
  const { route, params } = parseHash(hash);
  params.set(name, value);
  return formatHash(route || fallback, params);
}
