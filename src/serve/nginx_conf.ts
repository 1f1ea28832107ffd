/**
 * The nginx configuration that puts replicas of `attn serve` behind one
 * address (docs/deploy.md explains each line). What matters for serving:
 * - least_conn: a new request goes to the replica with the fewest open ones
 *   (generations last seconds, so round-robin would pile up on one);
 * - proxy_next_upstream error timeout: a request that could not be sent to a
 *   replica (it is down: connection refused) is sent to the next one. nginx
 *   never resends a POST that reached a replica, so a generation is never run
 *   twice; what was streaming from a replica that dies is cut, not repeated;
 * - no upstream keepalive: a cached connection to a replica that was killed
 *   would turn a safe retry into a failed POST;
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
    '      proxy_next_upstream error timeout;',
    `      proxy_next_upstream_tries ${o.upstreams.length};`,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}
