-- certflow_gateway: an nginx ssl_certificate_by_lua handler that sets the
-- certificate of each TLS handshake from certflow-gateway (GET /cert/{name},
-- the private key then the chain as PEM). Needs lua-nginx-module with
-- lua-resty-core (Debian: libnginx-mod-http-lua); no other library.
--
--   lua_package_path "/etc/nginx/lua/?.lua;;";
--   ssl_certificate_by_lua_block {
--       require("certflow_gateway").serve("127.0.0.1", 9180)
--       -- or: require("certflow_gateway").serve("unix:/run/certflow-gateway.sock")
--   }
--
-- A handshake without SNI keeps the server block's ssl_certificate. A name
-- the gateway has no certificate for (404), or any failure, aborts the
-- handshake; failures other than 404 are logged.
local ssl = require "ngx.ssl"

local M = {}

-- Timeout of each socket operation, in milliseconds: the gateway answers
-- from its cache in well under one, and bounds its own backend requests.
M.timeout = 7000

-- fetch asks the gateway for name's PEM; it returns the status and the
-- body, or nil and an error.
local function fetch(host, port, name)
    local sock = ngx.socket.tcp()
    sock:settimeout(M.timeout)
    local ok, err
    if port then
        ok, err = sock:connect(host, port)
    else
        ok, err = sock:connect(host)
    end
    if not ok then
        return nil, "connect: " .. err
    end
    ok, err = sock:send("GET /cert/" .. name .. " HTTP/1.1\r\nHost: certflow-gateway\r\n\r\n")
    if not ok then
        sock:close()
        return nil, "send: " .. err
    end
    local line
    line, err = sock:receive("*l")
    if not line then
        sock:close()
        return nil, "receive: " .. err
    end
    local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
    local length
    while true do
        line, err = sock:receive("*l")
        if not line then
            sock:close()
            return nil, "receive: " .. err
        end
        if line == "" then
            break
        end
        local k, v = line:match("^([^:]+):%s*(.-)%s*$")
        if k and k:lower() == "content-length" then
            length = tonumber(v)
        end
    end
    local body = ""
    if length and length > 0 then
        body, err = sock:receive(length)
        if not body then
            sock:close()
            return nil, "receive: " .. err
        end
    end
    if length then
        sock:setkeepalive(60000, 32) -- reuse the connection for the next handshake
    else
        sock:close()
    end
    return status, body
end

-- serve sets the certificate for the current handshake. host and port are
-- the gateway's address; host alone may be "unix:/path/to/socket".
function M.serve(host, port)
    local name = ssl.server_name()
    if not name then
        return
    end
    -- The name goes into a request line: allow only what a DNS name may hold.
    if #name > 253 or not name:match("^[%w%.%-]+$") then
        return ngx.exit(ngx.ERROR)
    end
    local status, body = fetch(host, port, name)
    if status ~= 200 then
        if not status then
            ngx.log(ngx.ERR, "certflow-gateway for ", name, ": ", body)
        elseif status ~= 404 then
            ngx.log(ngx.WARN, "certflow-gateway answered ", status, " for ", name)
        end
        return ngx.exit(ngx.ERROR)
    end
    local chain, err = ssl.cert_pem_to_der(body)
    if not chain then
        ngx.log(ngx.ERR, "certflow-gateway certificate for ", name, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
    local key
    key, err = ssl.priv_key_pem_to_der(body)
    if not key then
        ngx.log(ngx.ERR, "certflow-gateway key for ", name, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
    local ok
    ok, err = ssl.clear_certs()
    if ok then
        ok, err = ssl.set_der_cert(chain)
    end
    if ok then
        ok, err = ssl.set_der_priv_key(key)
    end
    if not ok then
        ngx.log(ngx.ERR, "certflow-gateway set certificate for ", name, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

return M
