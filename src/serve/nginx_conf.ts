/**
 * The nginx configuration that puts replicas of `attn serve` behind one
 * address (docs/deploy.md explains each line). What matters for serving:
 * - least_conn: a new request goes to the replica with the fewest open ones
 *   (generations last seconds, so round-robin would pile up on one);
 * - keepalive: idle connections to the replicas are kept and reused, so a
 *   request does not pay for a new TCP connection and a new HTTP parser in
 *   the replica (without it, one replica behind nginx served 0.77× the
 *   tokens per second of the same replica reached directly; with it 0.95×:
 *   bench/fleet_path_ab.mjs);
 *   keepalive_timeout 60s stays under the replica's own 65 s, so it is nginx
 *   that closes an idle connection, never the replica under a request;
 * - proxy_next_upstream error timeout http_503 non_idempotent: a request is
 *   sent to the next replica when this one could not be reached, failed or
 *   closed the connection before any byte of a response, or answered 503
 *   (it is shutting down and refused the request). non_idempotent lets that
 *   hold for POSTs, which is what makes reused connections safe: a POST
 *   written into a cached connection to a replica that has just been killed
 *   is resent instead of failing. Apart from a 503, a response that has
 *   begun is never resent: attn sends a stream's headers before its first
 *   token, so a stream cut by a dying replica is cut, not replayed. The replica's own
 *   --request-timeout (120 s) answers before proxy_read_timeout (300 s), so a
 *   slow generation is never started twice on live replicas;
 * - proxy_buffering off: streamed tokens reach the client as they come.
 */

export interface NginxOptions {
  /** host:port nginx listens on. */
  listen: string;
  /** host:port of each replica. */
  upstreams: readonly string[];
  /** A writable folder for nginx's pid, logs and temp files (when run by a user, as in tests and the bench). */
  prefix?: string;
  /** Seconds a replica that refused a connection is left out before it is tried again. */
  failTimeoutS?: number;
  /** Idle connections to the replicas kept open for reuse, per nginx worker (default 64; 0: none, a new connection per request). */
  keepalive?: number;
  /** Running as root: workers stay root too (only for throwaway local runs; a real deployment keeps nginx's default user). */
  asRoot?: boolean;
}

export function nginxConfig(o: NginxOptions): string {
  const p = o.prefix?.replace(/\/+$/, '');
  const temp = p ? ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${p}/${t}_temp;`) : [];
  return [
    ...(o.asRoot ? ['user root;'] : []),
    'worker_processes 1;',
    ...(p ? [`pid ${p}/nginx.pid;`, `error_log ${p}/error.log warn;`] : []),
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    ...temp,
    '  upstream attn {',
    '    least_conn;',
    ...(o.keepalive === 0 ? [] : [`    keepalive ${o.keepalive ?? 64};`, '    keepalive_timeout 60s;']),
    ...o.upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=${o.failTimeoutS ?? 5}s;`),
    '  }',
    '  server {',
    `    listen ${o.listen};`,
    '    client_max_body_size 2m;',
    '    location / {',
    '      proxy_pass http://attn;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '      proxy_buffering off;',
    '      proxy_connect_timeout 1s;',
    '      proxy_read_timeout 300s;',
    '      proxy_next_upstream error timeout http_503 non_idempotent;',
    `      proxy_next_upstream_tries ${o.upstreams.length};`,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}
