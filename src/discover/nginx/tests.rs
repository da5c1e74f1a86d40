//! Tests of the nginx reader, through `parse`.

use super::include::{component_matches, path_matches};
use super::*;

/// The output of `nginx -T`, as nginx writes it: each file after its header and a newline.
fn dump(files: &[(&str, &str)]) -> String {
    files
        .iter()
        .map(|(path, text)| format!("# configuration file {path}:\n{text}\n"))
        .collect()
}

fn at(file: &str, line: usize) -> Location {
    Location {
        file: file.to_string(),
        line,
    }
}

fn listen(port: u16, ssl: bool, address: Option<&str>) -> Listen {
    Listen {
        port,
        ssl,
        default_server: false,
        address: address.map(str::to_string),
    }
}

/// The first directive of a name in a server block.
fn find<'s>(server: &'s ServerBlock, name: &str) -> &'s Directive {
    server
        .directives
        .iter()
        .find(|directive| directive.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:#?}", server.directives))
}

/// A dump of one main file holding `http { SERVERS }`.
fn http(servers: &str) -> String {
    dump(&[("/etc/nginx/nginx.conf", &format!("http {{\n{servers}\n}}"))])
}

fn parse_error(dump: &str) -> ParseError {
    parse(dump).expect_err("the dump should not parse")
}

const DEBIAN_NGINX_CONF: &str = "user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
\t# multi_accept on;
}

http {

\t##
\t# Basic Settings
\t##

\tsendfile on;
\ttcp_nopush on;
\ttypes_hash_max_size 2048;
\t# server_tokens off;

\tinclude /etc/nginx/mime.types;
\tdefault_type application/octet-stream;

\tssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3; # Dropping SSLv3, ref: POODLE
\tssl_prefer_server_ciphers on;

\taccess_log /var/log/nginx/access.log;
\tgzip on;

\t##
\t# Virtual Host Configs
\t##

\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}


#mail {
#\t# auth_http localhost/auth.php;
#\t# pop3_capabilities \"TOP\" \"USER\";
#
#\tserver {
#\t\tlisten     localhost:110;
#\t\tprotocol   pop3;
#\t}
#}
";

const MODULES: &str = "load_module modules/ngx_stream_module.so;";

const MIME_TYPES: &str = "
types {
text/html                                        html htm shtml;
text/css                                         css;
application/javascript                           js;
}
";

const FASTCGI_PARAMS: &str = "
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  SCRIPT_FILENAME    $document_root$fastcgi_script_name;
fastcgi_param  REDIRECT_STATUS    200;";

const FORGE_UPLOADS: &str = "client_max_body_size 100M;";

const FORGE_VHOST: &str = "# FORGE CONFIG (DO NOT REMOVE!)
include forge-conf/example.com/before/*;

server {
listen 443 ssl http2;
listen [::]:443 ssl http2;
server_name example.com www.example.com;
server_tokens off;
root /home/forge/example.com/public;

# FORGE SSL (DO NOT REMOVE!)
ssl_certificate /etc/nginx/ssl/example.com/123/server.crt;
ssl_certificate_key /etc/nginx/ssl/example.com/123/server.key;

ssl_protocols TLSv1.2 TLSv1.3;
add_header X-Frame-Options \"SAMEORIGIN\";
index index.html index.htm index.php;
charset utf-8;

# FORGE CONFIG (DO NOT REMOVE!)
include forge-conf/example.com/server/*;

location / {
    try_files $uri $uri/ /index.php?$query_string;
}

location = /favicon.ico { access_log off; log_not_found off; }
error_page 404 /index.php;

location ~ \\.php$ {
    fastcgi_split_path_info ^(.+\\.php)(/.+)$;
    fastcgi_pass unix:/var/run/php/php8.2-fpm.sock;
    fastcgi_index index.php;
    include fastcgi_params;
}

location ~ /\\.(?!well-known).* {
    deny all;
}
}

# FORGE CONFIG (DO NOT REMOVE!)
include forge-conf/example.com/after/*;
";

const FORGE_BEFORE: &str = "# Redirect every request to HTTPS...
server {
listen 80;
listen [::]:80;

server_name example.com;
return 301 https://$host$request_uri;
}
";

const FORGE_SERVER: &str = "location /healthz {
access_log off;
return 200 \"ok\";
}";

const FORGE_AFTER: &str = "server {
listen 80;
server_name example.net www.example.net;
return 301 https://example.com$request_uri;
}";

/// A Forge server as `nginx -T` dumps it: the sites-enabled symlink's path, not its target's.
fn forge() -> NginxConfig {
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", DEBIAN_NGINX_CONF),
        ("/etc/nginx/modules-enabled/50-mod-stream.conf", MODULES),
        ("/etc/nginx/mime.types", MIME_TYPES),
        ("/etc/nginx/conf.d/uploads.conf", FORGE_UPLOADS),
        ("/etc/nginx/sites-enabled/example.com", FORGE_VHOST),
        (
            "/etc/nginx/forge-conf/example.com/before/redirect.conf",
            FORGE_BEFORE,
        ),
        (
            "/etc/nginx/forge-conf/example.com/server/health.conf",
            FORGE_SERVER,
        ),
        ("/etc/nginx/fastcgi_params", FASTCGI_PARAMS),
        (
            "/etc/nginx/forge-conf/example.com/after/old-domain.conf",
            FORGE_AFTER,
        ),
    ]);
    parse(&dump).expect("Forge's dump parses")
}

const VHOST: &str = "/etc/nginx/sites-enabled/example.com";

#[test]
fn forge_vhost_with_includes_gives_names_root_socket_and_redirect_twin() {
    let config = forge();
    assert_eq!(config.servers.len(), 3, "{:#?}", config.servers);
    let [twin, site, old] = &config.servers[..] else {
        unreachable!()
    };
    assert_eq!(site.at, at(VHOST, 4));
    assert_eq!(site.names, ["example.com", "www.example.com"]);
    assert_eq!(
        site.root,
        Some(("/home/forge/example.com/public".into(), at(VHOST, 9)))
    );
    let socket = "unix:/var/run/php/php8.2-fpm.sock".to_string();
    assert_eq!(site.fastcgi_pass, [(socket, at(VHOST, 32))]);
    let certificate = "/etc/nginx/ssl/example.com/123/server.crt".to_string();
    assert_eq!(site.ssl_certificate, Some((certificate, at(VHOST, 12))));
    let key = "/etc/nginx/ssl/example.com/123/server.key".to_string();
    assert_eq!(site.ssl_certificate_key, Some((key, at(VHOST, 13))));
    assert_eq!(
        site.listen,
        [listen(443, true, None), listen(443, true, Some("[::]"))]
    );
    assert!(site.serves_https());
    assert!(!site.is_redirect_only());
    assert_eq!(site.redirect, None);

    let before = "/etc/nginx/forge-conf/example.com/before/redirect.conf";
    assert_eq!(twin.at, at(before, 2));
    assert_eq!(twin.names, ["example.com"]);
    assert_eq!(
        twin.listen,
        [listen(80, false, None), listen(80, false, Some("[::]"))]
    );
    let url = "https://$host$request_uri".to_string();
    assert_eq!(twin.redirect, Some((301, url, at(before, 7))));
    assert!(twin.is_redirect_only());
    assert!(!twin.serves_https());

    assert_eq!(old.names, ["example.net", "www.example.net"]);
    assert!(old.is_redirect_only());
}

#[test]
fn forge_directives_keep_their_own_file_line_and_enclosing_location() {
    let config = forge();
    let site = &config.servers[1];
    let param = find(site, "fastcgi_param");
    assert_eq!(param.args, ["QUERY_STRING", "$query_string"]);
    assert_eq!(param.at, at("/etc/nginx/fastcgi_params", 2));
    assert_eq!(param.context, ["location ~ \\.php$"]);
    let split = find(site, "fastcgi_split_path_info");
    assert_eq!(split.args, ["^(.+\\.php)(/.+)$"]);
    assert_eq!(split.context, ["location ~ \\.php$"]);

    let health = "/etc/nginx/forge-conf/example.com/server/health.conf";
    let opener = find(site, "return");
    assert_eq!(opener.args, ["200", "ok"]);
    assert_eq!(opener.at, at(health, 3));
    assert_eq!(opener.context, ["location /healthz"]);
    let favicon = site
        .directives
        .iter()
        .find(|directive| directive.name == "log_not_found")
        .map(|directive| directive.context.clone());
    assert_eq!(favicon, Some(vec!["location = /favicon.ico".to_string()]));
}

#[test]
fn forge_directives_are_listed_in_order_with_includes_expanded_after_the_include() {
    let config = forge();
    let names: Vec<&str> = config.servers[1]
        .directives
        .iter()
        .map(|directive| directive.name.as_str())
        .collect();
    let include = names.iter().position(|name| *name == "include");
    assert_eq!(include, Some(11));
    assert_eq!(
        names[11..16],
        ["include", "location", "access_log", "return", "location"]
    );
    let location = find(&config.servers[1], "location");
    assert_eq!(location.args, ["/healthz"]);
    assert!(location.context.is_empty());
    assert_eq!(names.last(), Some(&"deny"));
}

#[test]
fn forge_dump_lists_every_file_in_dump_order_main_first() {
    let config = forge();
    assert_eq!(config.files.len(), 9);
    assert_eq!(config.files[0], "/etc/nginx/nginx.conf");
    assert_eq!(
        config.files[8],
        "/etc/nginx/forge-conf/example.com/after/old-domain.conf"
    );
}

#[test]
fn vito_vhost_gives_plain_http_site_with_its_own_fpm_pool() {
    // Vito writes sites-available/example.com and links it from sites-enabled, the path
    // `nginx -T` names.
    let vhost = "server {
listen 80;
listen [::]:80;
server_name example.com www.example.com;
root /home/vito/example.com/public;

add_header X-Frame-Options \"SAMEORIGIN\";
add_header X-Content-Type-Options \"nosniff\";

index index.php index.html;
charset utf-8;

location / {
    try_files $uri $uri/ /index.php?$query_string;
}

location = /favicon.ico { access_log off; log_not_found off; }
location = /robots.txt  { access_log off; log_not_found off; }

error_page 404 /index.php;

location ~ \\.php$ {
    fastcgi_pass unix:/var/run/php/php8.2-fpm-vito.sock;
    fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
    include fastcgi_params;
    fastcgi_hide_header X-Powered-By;
}

location ~ /\\.(?!well-known).* {
    deny all;
}
}
";
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", DEBIAN_NGINX_CONF),
        ("/etc/nginx/mime.types", MIME_TYPES),
        (VHOST, vhost),
        ("/etc/nginx/fastcgi_params", FASTCGI_PARAMS),
    ]);
    let config = parse(&dump).expect("Vito's dump parses");
    let [site] = &config.servers[..] else {
        panic!("{:#?}", config.servers)
    };
    assert_eq!(site.names, ["example.com", "www.example.com"]);
    let root = "/home/vito/example.com/public".to_string();
    assert_eq!(site.root, Some((root, at(VHOST, 5))));
    let socket = "unix:/var/run/php/php8.2-fpm-vito.sock".to_string();
    assert_eq!(site.fastcgi_pass, [(socket, at(VHOST, 23))]);
    assert!(!site.serves_https());
    assert!(!site.is_redirect_only());
    assert_eq!(site.ssl_certificate, None);
    let header = find(site, "add_header");
    assert_eq!(header.args, ["X-Frame-Options", "SAMEORIGIN"]);
    let deny = find(site, "deny");
    assert_eq!(deny.context, ["location ~ /\\.(?!well-known).*"]);
}

const SHOP: &str = "/etc/nginx/sites-enabled/shop";

const SHOP_VHOST: &str = "server {
server_name shop.example.com;
root /var/www/shop/current/public;
index index.php;
client_max_body_size 64m;

if ($host = www.shop.example.com) {
    return 301 https://shop.example.com$request_uri;
}

location ~ \\.php$ {
    include snippets/fastcgi-php.conf;
    fastcgi_pass unix:/run/php/php8.3-fpm.sock;
}

listen [::]:443 ssl ipv6only=on; # managed by Certbot
listen 443 ssl; # managed by Certbot
ssl_certificate /etc/letsencrypt/live/shop.example.com/fullchain.pem; # managed by Certbot
ssl_certificate_key /etc/letsencrypt/live/shop.example.com/privkey.pem; # managed by Certbot
include /etc/letsencrypt/options-ssl-nginx.conf; # managed by Certbot
ssl_dhparam /etc/letsencrypt/ssl-dhparams.pem; # managed by Certbot
}
server {
if ($host = shop.example.com) {
    return 301 https://$host$request_uri;
} # managed by Certbot

listen 80 default_server;
listen [::]:80;
server_name shop.example.com;
return 404; # managed by Certbot
}
";

const FASTCGI_PHP: &str = "# regex to split $uri to $fastcgi_script_name and $fastcgi_path
fastcgi_split_path_info ^(.+?\\.php)(/.*)$;

# Check that the PHP script exists before passing it
try_files $fastcgi_script_name =404;

set $path_info $fastcgi_path_info;
fastcgi_param PATH_INFO $path_info;

fastcgi_index index.php;
include fastcgi.conf;
";

const CERTBOT_OPTIONS: &str = "ssl_session_cache shared:le_nginx_SSL:10m;
ssl_session_timeout 1440m;
ssl_session_tickets off;
ssl_protocols TLSv1.2 TLSv1.3;
ssl_prefer_server_ciphers off;
ssl_ciphers \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\";
";

fn shop() -> NginxConfig {
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", DEBIAN_NGINX_CONF),
        ("/etc/nginx/mime.types", MIME_TYPES),
        (SHOP, SHOP_VHOST),
        ("/etc/nginx/snippets/fastcgi-php.conf", FASTCGI_PHP),
        ("/etc/nginx/fastcgi.conf", FASTCGI_PARAMS),
        ("/etc/letsencrypt/options-ssl-nginx.conf", CERTBOT_OPTIONS),
    ]);
    parse(&dump).expect("the hand-written dump parses")
}

#[test]
fn hand_written_site_keeps_custom_body_size_and_conditional_www_redirect() {
    let config = shop();
    let site = &config.servers[0];
    let size = find(site, "client_max_body_size");
    assert_eq!(size.args, ["64m"]);
    assert_eq!(size.at, at(SHOP, 5));
    assert!(size.context.is_empty());
    let condition = find(site, "if");
    assert_eq!(condition.args, ["($host", "=", "www.shop.example.com)"]);
    let redirect = find(site, "return");
    assert_eq!(redirect.context, ["if ($host = www.shop.example.com)"]);
    assert_eq!(redirect.at, at(SHOP, 8));
    assert_eq!(
        site.redirect, None,
        "a conditional redirect is not the site's"
    );
    assert!(!site.is_redirect_only());
    assert!(site.serves_https());
    let socket = "unix:/run/php/php8.3-fpm.sock".to_string();
    assert_eq!(site.fastcgi_pass, [(socket, at(SHOP, 13))]);
}

#[test]
fn hand_written_site_expands_nested_includes_inside_a_location() {
    let config = shop();
    let site = &config.servers[0];
    let split = find(site, "fastcgi_split_path_info");
    assert_eq!(split.args, ["^(.+?\\.php)(/.*)$"]);
    assert_eq!(split.at, at("/etc/nginx/snippets/fastcgi-php.conf", 2));
    assert_eq!(split.context, ["location ~ \\.php$"]);
    let param = find(site, "fastcgi_param");
    assert_eq!(param.args, ["PATH_INFO", "$path_info"]);
    let params = site
        .directives
        .iter()
        .filter(|directive| directive.at.file == "/etc/nginx/fastcgi.conf")
        .count();
    assert_eq!(params, 4);
    let ciphers = find(site, "ssl_ciphers");
    assert_eq!(ciphers.at, at("/etc/letsencrypt/options-ssl-nginx.conf", 6));
    assert!(ciphers.context.is_empty());
}

#[test]
fn certbot_twin_redirecting_under_if_is_redirect_only() {
    let config = shop();
    let twin = &config.servers[1];
    assert_eq!(twin.at, at(SHOP, 23));
    let url = "https://$host$request_uri".to_string();
    assert_eq!(twin.redirect, Some((301, url, at(SHOP, 25))));
    assert!(twin.is_redirect_only());
    assert!(twin.listen[0].default_server);
    assert!(!twin.serves_https());
}

#[test]
fn server_without_listen_listens_on_port_80() {
    let config = parse(&http("server { server_name _; }")).expect("parses");
    assert_eq!(config.servers[0].listen, [listen(80, false, None)]);
    assert_eq!(config.servers[0].names, ["_"]);
}

#[test]
fn listen_forms_give_address_port_and_flags() {
    let cases = [
        ("80", listen(80, false, None)),
        ("443 ssl http2", listen(443, true, None)),
        ("[::]:443 ssl", listen(443, true, Some("[::]"))),
        ("[::1]", listen(80, false, Some("[::1]"))),
        ("127.0.0.1:8080", listen(8080, false, Some("127.0.0.1"))),
        ("127.0.0.1", listen(80, false, Some("127.0.0.1"))),
        ("*:80", listen(80, false, None)),
        ("localhost:8000", listen(8000, false, Some("localhost"))),
        (
            "unix:/run/nginx.sock",
            listen(0, false, Some("unix:/run/nginx.sock")),
        ),
    ];
    for (text, expected) in cases {
        let config = parse(&http(&format!("server {{ listen {text}; }}"))).expect(text);
        assert_eq!(config.servers[0].listen, [expected], "listen {text}");
    }
    for flag in ["default_server", "default"] {
        let server = format!("server {{ listen 80 {flag}; }}");
        let config = parse(&http(&server)).expect("parses");
        assert!(config.servers[0].listen[0].default_server, "{flag}");
    }
}

#[test]
fn unreadable_listen_port_is_an_error_at_the_directive() {
    let error = parse_error(&http("server {\n  listen 127.0.0.1:http;\n}"));
    assert_eq!(error.at, at("/etc/nginx/nginx.conf", 3));
    assert!(error.message.contains("127.0.0.1:http"), "{error}");
    let error = parse_error(&http("server { listen 70000; }"));
    assert!(error.message.contains("70000"), "{error}");
}

#[test]
fn https_is_served_by_ssl_flag_port_443_or_ssl_on() {
    let serves = |server: &str| {
        let config = parse(&http(server)).expect("parses");
        config.servers[0].serves_https()
    };
    assert!(serves("server { listen 8443 ssl; }"));
    assert!(serves("server { listen 443; }"));
    assert!(serves("server { listen 8443; ssl on; }"));
    assert!(!serves("server { listen 8443; ssl off; }"));
    assert!(!serves("server { listen 80; http2 on; }"));
}

#[test]
fn location_slash_with_only_a_return_is_a_redirect() {
    let server = "server {\n listen 80;\n server_name a.test;\n location / {\n  return 308 https://a.test$request_uri;\n }\n}";
    let config = parse(&http(server)).expect("parses");
    let twin = &config.servers[0];
    let url = "https://a.test$request_uri".to_string();
    assert_eq!(
        twin.redirect,
        Some((308, url, at("/etc/nginx/nginx.conf", 6)))
    );
    assert!(twin.is_redirect_only());
}

#[test]
fn return_of_a_bare_url_is_a_302_and_other_codes_are_no_redirect() {
    let redirect = |server: &str| {
        let config = parse(&http(server)).expect("parses");
        config.servers[0]
            .redirect
            .clone()
            .map(|(code, url, _)| (code, url))
    };
    let url = "https://b.test/".to_string();
    assert_eq!(
        redirect("server { return https://b.test/; }"),
        Some((302, url))
    );
    assert_eq!(redirect("server { return 200 https://b.test/; }"), None);
    assert_eq!(redirect("server { return 444; }"), None);
    assert_eq!(redirect("server { return \"/relative\"; }"), None);
    let in_location = "server { location /old { return 301 https://b.test/; } }";
    assert_eq!(redirect(in_location), None);
}

#[test]
fn block_that_serves_files_besides_redirecting_is_not_redirect_only() {
    let with_root = "server { listen 80; root /srv; return 301 https://c.test; }";
    let config = parse(&http(with_root)).expect("parses");
    assert!(config.servers[0].redirect.is_some());
    assert!(!config.servers[0].is_redirect_only());
    let dropping = "server { listen 80 default_server; server_name _; return 444; }";
    let config = parse(&http(dropping)).expect("parses");
    assert!(!config.servers[0].is_redirect_only());
    let deep = "server { location / { if ($a) { return 301 https://c.test; } } }";
    let config = parse(&http(deep)).expect("parses");
    assert!(!config.servers[0].is_redirect_only());
}

#[test]
fn https_twin_of_www_with_certificates_is_redirect_only() {
    let server = "server {
listen 443 ssl;
server_name www.d.test;
ssl_certificate /etc/ssl/d.crt;
ssl_certificate_key /etc/ssl/d.key;
include /etc/nginx/snippets/ssl.conf;
return 301 https://d.test$request_uri;
}";
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", &format!("http {{\n{server}\n}}")),
        ("/etc/nginx/snippets/ssl.conf", "ssl_protocols TLSv1.3;"),
    ]);
    let config = parse(&dump).expect("parses");
    assert!(config.servers[0].is_redirect_only());
    assert!(config.servers[0].serves_https());
}

#[test]
fn redirect_only_include_may_hold_only_redirect_directives() {
    let main = "http { server { include snippets/twin.conf; } }";
    let with = |twin: &str| {
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", main),
            ("/etc/nginx/snippets/twin.conf", twin),
        ]);
        parse(&dump).expect("parses").servers[0].is_redirect_only()
    };
    assert!(with("listen 80; return 301 https://e.test$request_uri;"));
    assert!(!with("listen 80; root /srv; return 301 https://e.test;"));
}

#[test]
fn quoted_strings_keep_semicolons_braces_and_hashes_and_resolve_escapes() {
    let server = r#"server {
add_header Content-Security-Policy "default-src 'self'; img-src *" always;
add_header X-Quote "say \"hi\" \\ back";
add_header X-Single 'it\'s';
return 200 "{ not a block } # nor a comment";
set $tab "a\tb\d";
}"#;
    let config = parse(&http(server)).expect("parses");
    let args: Vec<&[String]> = config.servers[0]
        .directives
        .iter()
        .map(|directive| directive.args.as_slice())
        .collect();
    assert_eq!(
        args[0],
        [
            "Content-Security-Policy",
            "default-src 'self'; img-src *",
            "always"
        ]
    );
    assert_eq!(args[1], ["X-Quote", "say \"hi\" \\ back"]);
    assert_eq!(args[2], ["X-Single", "it's"]);
    assert_eq!(args[3], ["200", "{ not a block } # nor a comment"]);
    assert_eq!(args[4], ["$tab", "a\tb\\d"]);
    assert_eq!(config.servers[0].directives.len(), 5);
}

#[test]
fn comments_start_only_where_a_token_starts() {
    let server = "server { # listen 81;
listen 80; # listen 82;
rewrite ^/(.*)$ https://$host/$1#top permanent;#tail
location = /a#b { deny all; }
}";
    let config = parse(&http(server)).expect("parses");
    let server = &config.servers[0];
    assert_eq!(server.listen, [listen(80, false, None)]);
    let rewrite = find(server, "rewrite");
    assert_eq!(
        rewrite.args,
        ["^/(.*)$", "https://$host/$1#top", "permanent"]
    );
    assert_eq!(find(server, "deny").context, ["location = /a#b"]);
    assert_eq!(server.directives.len(), 4);
}

#[test]
fn variables_in_braces_stay_in_unquoted_words_and_a_closing_brace_does_not_end_one() {
    let server =
        "server {\n  set $path ${uri}.html;\n  set $odd a}b;\n  location /x {deny all;}\n}";
    let config = parse(&http(server)).expect("parses");
    let server = &config.servers[0];
    let args: Vec<&[String]> = server
        .directives
        .iter()
        .map(|directive| directive.args.as_slice())
        .collect();
    assert_eq!(args[0], ["$path", "${uri}.html"]);
    assert_eq!(args[1], ["$odd", "a}b"]);
    assert_eq!(find(server, "deny").context, ["location /x"]);
}

#[test]
fn regex_locations_tokenize_with_literal_backslashes_and_quoted_braces() {
    let server = r#"server {
location ~ \.php$ { fastcgi_split_path_info ^(.+\.php)(/.+)$; }
location ~ /\.(?!well-known).* { deny all; }
location ~* "^/img/[a-z]{2,3}$" { expires 30d; }
if ($request_uri ~ "^/(a|b)") { return 403; }
}"#;
    let config = parse(&http(server)).expect("parses");
    let contexts: Vec<String> = config.servers[0]
        .directives
        .iter()
        .filter(|directive| !directive.context.is_empty())
        .map(|directive| directive.context.join(" / "))
        .collect();
    assert_eq!(
        contexts,
        [
            "location ~ \\.php$",
            "location ~ /\\.(?!well-known).*",
            "location ~* ^/img/[a-z]{2,3}$",
            "if ($request_uri ~ ^/(a|b) )",
        ]
    );
    let split = find(&config.servers[0], "fastcgi_split_path_info");
    assert_eq!(split.args, ["^(.+\\.php)(/.+)$"]);
}

#[test]
fn nested_blocks_give_the_whole_context_path() {
    let server = "server {\n location /api {\n  limit_except GET {\n   deny all;\n  }\n }\n}";
    let config = parse(&http(server)).expect("parses");
    let deny = find(&config.servers[0], "deny");
    assert_eq!(deny.context, ["location /api", "limit_except GET"]);
    assert_eq!(deny.at, at("/etc/nginx/nginx.conf", 5));
}

#[test]
fn stream_mail_and_upstream_servers_are_not_server_blocks() {
    let main = "
stream {
upstream db { server 10.0.0.1:5432 weight=5; }
server { listen 5432; proxy_pass db; }
}
mail {
server { listen 25; protocol smtp; }
}
http {
upstream php { server unix:/run/php.sock; }
map $http_upgrade $connection_upgrade { default upgrade; '' close; }
server { listen 8080; location / { fastcgi_pass php; } }
}";
    let config = parse(&dump(&[("/etc/nginx/nginx.conf", main)])).expect("parses");
    let [server] = &config.servers[..] else {
        panic!("{:#?}", config.servers)
    };
    assert_eq!(server.listen, [listen(8080, false, None)]);
    assert_eq!(server.fastcgi_pass[0].0, "php");
}

#[test]
fn includes_match_globs_in_sorted_order_and_skip_hidden_files() {
    let main = "http { include sites/*; include extra/site-?.conf; include extra/[0-9]*; }";
    let server = |name: &str| format!("server {{ server_name {name}; }}");
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", main),
        ("/etc/nginx/sites/zz", &server("zz")),
        ("/etc/nginx/sites/aa", &server("aa")),
        ("/etc/nginx/sites/.hidden", &server("hidden")),
        ("/etc/nginx/extra/site-1.conf", &server("one")),
        ("/etc/nginx/extra/site-10.conf", &server("ten")),
        ("/etc/nginx/extra/9lives", &server("nine")),
        ("/etc/nginx/extra/x9", &server("x9")),
    ]);
    let config = parse(&dump).expect("parses");
    let names: Vec<&str> = config
        .servers
        .iter()
        .map(|server| server.names[0].as_str())
        .collect();
    assert_eq!(names, ["aa", "zz", "one", "nine"]);
}

#[test]
fn includes_match_globs_in_directories_relative_to_the_main_file() {
    let main = "http { include forge-conf/*/before/*; include /etc/nginx//./conf.d/*.conf; }";
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", main),
        (
            "/etc/nginx/forge-conf/b.test/before/r.conf",
            "server { server_name b; }",
        ),
        (
            "/etc/nginx/forge-conf/a.test/before/r.conf",
            "server { server_name a; }",
        ),
        (
            "/etc/nginx/forge-conf/a.test/after/r.conf",
            "server { server_name after; }",
        ),
        ("/etc/nginx/conf.d/c.conf", "server { server_name c; }"),
        (
            "/etc/nginx/conf.d/c.conf.bak",
            "server { server_name bak; }",
        ),
    ]);
    let config = parse(&dump).expect("parses");
    let names: Vec<&str> = config
        .servers
        .iter()
        .map(|server| server.names[0].as_str())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn include_matching_no_dumped_file_expands_to_nothing() {
    let main =
        "http { include /etc/nginx/sites-enabled/*; server { include missing.conf; listen 81; } }";
    let config = parse(&dump(&[("/etc/nginx/nginx.conf", main)])).expect("parses");
    let [server] = &config.servers[..] else {
        panic!("{:#?}", config.servers)
    };
    assert_eq!(server.directives.len(), 2);
    assert_eq!(server.listen, [listen(81, false, None)]);
}

#[test]
fn main_level_include_can_hold_the_http_block() {
    let dump = dump(&[
        ("/usr/local/nginx/conf/nginx.conf", "include parts/*.conf;"),
        (
            "/usr/local/nginx/conf/parts/http.conf",
            "http { server { listen 82; } }",
        ),
    ]);
    let config = parse(&dump).expect("parses");
    assert_eq!(config.servers[0].listen, [listen(82, false, None)]);
    assert_eq!(
        config.servers[0].at,
        at("/usr/local/nginx/conf/parts/http.conf", 1)
    );
}

#[test]
fn glob_components_follow_glob_3() {
    assert!(component_matches("*.conf", "a.conf"));
    assert!(!component_matches("*.conf", ".a.conf"));
    assert!(component_matches(".*", ".hidden"));
    assert!(component_matches("[!a]?", "bc"));
    assert!(!component_matches("[^a]?", "ac"));
    assert!(component_matches("[]x]", "]"));
    assert!(component_matches("[a-c]", "b"));
    assert!(component_matches("a[b", "a[b"));
    assert!(component_matches("\\*", "*"));
    assert!(!component_matches("\\*", "x"));
    assert!(component_matches("**a*", "bab"));
    assert!(!path_matches("/etc/*", "/etc/nginx/x"));
    assert!(path_matches("/etc/*/x", "/etc/nginx/x"));
}

#[test]
fn include_cycle_is_an_error_at_the_include() {
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", "http { include a.conf; }"),
        ("/etc/nginx/a.conf", "server {\n  include b.conf;\n}"),
        ("/etc/nginx/b.conf", "include a.conf;"),
    ]);
    let error = parse_error(&dump);
    assert_eq!(error.at, at("/etc/nginx/b.conf", 1));
    assert!(error.message.contains("include cycle"), "{error}");
}

#[test]
fn same_file_included_twice_is_expanded_twice() {
    let dump = dump(&[
        (
            "/etc/nginx/nginx.conf",
            "http { server { include h.conf; include h.conf; } }",
        ),
        ("/etc/nginx/h.conf", "add_header X-A 1;"),
    ]);
    let config = parse(&dump).expect("parses");
    let headers = config.servers[0]
        .directives
        .iter()
        .filter(|directive| directive.name == "add_header")
        .count();
    assert_eq!(headers, 2);
}

#[test]
fn include_with_two_arguments_is_an_error() {
    let error = parse_error(&http("include a b;"));
    assert_eq!(error.at, at("/etc/nginx/nginx.conf", 2));
}

#[test]
fn unclosed_block_is_an_error_at_its_opening() {
    let error = parse_error(&http("server {\n  listen 80;\n  location / {\n}"));
    assert_eq!(error.at, at("/etc/nginx/nginx.conf", 1));
    assert!(
        error.message.contains("\"http\" block is never closed"),
        "{error}"
    );
}

#[test]
fn stray_closing_brace_is_an_error_at_its_line() {
    let dump = dump(&[("/etc/nginx/nginx.conf", "http {\n}\n}\n")]);
    let error = parse_error(&dump);
    assert_eq!(error.at, at("/etc/nginx/nginx.conf", 3));
    let error = parse_error(&http("server { listen 80 }"));
    assert!(error.message.contains("unexpected \"}\""), "{error}");
}

#[test]
fn unterminated_quote_is_an_error_where_it_opens() {
    let error = parse_error(&http("server {\n  add_header X \"a;\n}\n"));
    assert_eq!(error.at, at("/etc/nginx/nginx.conf", 3));
    assert!(error.message.contains("unterminated"), "{error}");
}

#[test]
fn directive_without_semicolon_at_end_of_file_is_an_error_at_the_directive() {
    let dump = dump(&[
        ("/etc/nginx/nginx.conf", "http { include x.conf; }"),
        ("/etc/nginx/x.conf", "gzip on;\n\ngzip_types text/css\n"),
    ]);
    let error = parse_error(&dump);
    assert_eq!(error.at, at("/etc/nginx/x.conf", 3));
    assert_eq!(
        error.to_string(),
        "/etc/nginx/x.conf:3: \"gzip_types\" has no \";\" before the end of the file"
    );
}

#[test]
fn lone_semicolon_and_text_glued_to_a_quote_are_errors() {
    let error = parse_error(&http("server { ; }"));
    assert!(error.message.contains("unexpected \";\""), "{error}");
    let error = parse_error(&http("server { add_header \"a\"b; }"));
    assert!(error.message.contains("unexpected \"b\""), "{error}");
}

#[test]
fn deep_nesting_is_refused_not_overflowing() {
    let text = "a {".repeat(MAX_DEPTH + 5);
    let error = parse_error(&dump(&[("/etc/nginx/nginx.conf", &text)]));
    assert!(error.message.contains("nested too deeply"), "{error}");
}

#[test]
fn text_without_headers_is_not_a_dump() {
    let error = parse_error("server { listen 80; }");
    assert_eq!(error.at, at("nginx -T", 1));
}

#[test]
fn lines_before_the_first_header_and_crlf_line_ends_are_ignored() {
    let text = "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\r\n\
                # configuration file /etc/nginx/nginx.conf:\r\n\
                http {\r\n  server {\r\n    listen 80;\r\n    root /srv/www;\r\n  }\r\n}\r\n";
    let config = parse(text).expect("parses");
    assert_eq!(config.files, ["/etc/nginx/nginx.conf"]);
    let root = config.servers[0].root.clone();
    assert_eq!(
        root,
        Some(("/srv/www".into(), at("/etc/nginx/nginx.conf", 4)))
    );
}
