-- aimusicd: render the project, then ask the aimusicd daemon whether each rendered file sounds
-- AI-generated. Shows the verdicts in a message box and in the ReaScript console.
--
-- Install: Actions > Show action list > New action > Load ReaScript..., pick this file; give it a
-- shortcut or a toolbar button. The daemon must be running (`aimusicd run`, or the systemd/launchd
-- service), and the rendered files must be inside its allowed roots (by default your home folder).
--
-- The script runs `aimusicd send /aimusic/analyze <file> --json` for each file through
-- reaper.ExecProcess. REAPER does not search your shell's PATH: set AIMUSICD below to the full path
-- of the aimusicd executable (`which aimusicd` in a terminal tells you).

---------------------------------------------------------------------------------------------------
-- Settings
---------------------------------------------------------------------------------------------------
local CONFIG = {
  -- Full path of the aimusicd command (macOS/Linux pipx or venv install; on Windows e.g.
  -- [[C:\Users\me\aimusicd\.venv\Scripts\aimusicd.exe]]).
  AIMUSICD = os.getenv("HOME") and (os.getenv("HOME") .. "/.local/bin/aimusicd") or "aimusicd",
  -- Extra arguments for `aimusicd send`, e.g. { "--preset", "reaper-bounces" } or { "--port", "9431" }.
  SEND_ARGS = {},
  -- Render first? 41824 = "File: Render project, using the most recent render settings";
  -- 42230 = the same, and close the render dialog when done. false = only check the files the most
  -- recent render settings point at (e.g. to check the last render again).
  RENDER_ACTION = 42230,
  -- Engines: "" = the daemon's default ([engines] mode), or "auto" | "full" | "cnn" | "demucs".
  MODE = "",
  -- Seconds to wait for each analysis (the Demucs engine takes a while on long files).
  ANALYZE_TIMEOUT_S = 600,
  -- Ping the daemon first, so that a stopped daemon is reported at once instead of after
  -- ANALYZE_TIMEOUT_S of waiting.
  PING_FIRST = true,
  PING_TIMEOUT_S = 5,
}
-- Callers (and the tests) may override settings by defining AIMUSICD_CONFIG before loading this file.
if type(AIMUSICD_CONFIG) == "table" then
  for k, v in pairs(AIMUSICD_CONFIG) do CONFIG[k] = v end
end

local M = { CONFIG = CONFIG }

-- Exit codes of `aimusicd send`: 1 = the daemon refused (its /aimusic/error is printed) or sending
-- failed, 2 = bad arguments or preset, 3 = no answer.
M.EXIT_OK, M.EXIT_FAILED, M.EXIT_USAGE, M.EXIT_TIMEOUT = 0, 1, 2, 3

---------------------------------------------------------------------------------------------------
-- Pure helpers (no REAPER needed: tests load this file without `reaper` and call them)
---------------------------------------------------------------------------------------------------

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end
M.trim = trim

--- RENDER_TARGETS ("a.wav;b.wav") -> { "a.wav", "b.wav" }: trimmed, empty entries and
--- duplicates dropped, order kept.
function M.split_targets(s)
  local out, seen = {}, {}
  if type(s) ~= "string" then return out end
  for part in (s .. ";"):gmatch("([^;]*);") do
    local p = trim(part)
    if p ~= "" and not seen[p] then
      seen[p] = true
      out[#out + 1] = p
    end
  end
  return out
end

--- A minimal JSON decoder (objects, arrays, strings with escapes, numbers, true/false/null).
--- Returns value, or nil and a message. null decodes to M.null.
M.null = setmetatable({}, { __tostring = function() return "null" end })

function M.json_decode(text)
  if type(text) ~= "string" then return nil, "not a string" end
  local pos = 1
  local function fail(what) error({ msg = what .. " at character " .. pos }, 0) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or (#text + 1) end
  local value
  local function str()
    pos = pos + 1                                   -- opening quote
    local buf = {}
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; break end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                          n = "\n", r = "\r", t = "\t" })[e]
        if simple then
          buf[#buf + 1] = simple; pos = pos + 2
        elseif e == "u" then
          local hex = text:sub(pos + 2, pos + 5)
          if not hex:match("^%x%x%x%x$") then fail("bad \\u escape") end
          local cp = tonumber(hex, 16); pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF and text:sub(pos, pos + 1) == "\\u" then
            local lo = tonumber(text:sub(pos + 2, pos + 5), 16)
            if lo and lo >= 0xDC00 and lo <= 0xDFFF then
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); pos = pos + 6
            end
          end
          buf[#buf + 1] = utf8.char(cp)
        else
          fail("bad escape")
        end
      else
        local j = text:find('["\\]', pos) or (#text + 1)
        buf[#buf + 1] = text:sub(pos, j - 1); pos = j
      end
    end
    return table.concat(buf)
  end
  function value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local obj = {}
      skip()
      if text:sub(pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        skip()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        skip()
        if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        obj[k] = value()
        skip()
        local d = text:sub(pos, pos); pos = pos + 1
        if d == "}" then return obj end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      pos = pos + 1
      local arr = {}
      skip()
      if text:sub(pos, pos) == "]" then pos = pos + 1; return arr end
      while true do
        arr[#arr + 1] = value()
        skip()
        local d = text:sub(pos, pos); pos = pos + 1
        if d == "]" then return arr end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif text:find("^true", pos) then pos = pos + 4; return true
    elseif text:find("^false", pos) then pos = pos + 5; return false
    elseif text:find("^null", pos) then pos = pos + 4; return M.null
    else
      local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" or num == "-" then fail("unexpected '" .. c .. "'") end
      pos = pos + #num
      local n = tonumber(num)
      if n == nil then fail("bad number") end
      return n
    end
  end
  local ok, result = pcall(function()
    local v = value()
    skip()
    if pos <= #text then fail("trailing characters") end
    return v
  end)
  if ok then return result end
  return nil, type(result) == "table" and result.msg or tostring(result)
end

--- One line of `aimusicd send --json` -> { address = "/aimusic/result", args = {...} } or nil.
function M.parse_reply_line(line)
  line = trim(line or "")
  if line:sub(1, 1) ~= "{" then return nil end
  local obj = M.json_decode(line)
  if type(obj) ~= "table" or type(obj.address) ~= "string" or type(obj.args) ~= "table" then
    return nil
  end
  return { address = obj.address, args = obj.args }
end

--- A /aimusic/result reply -> a table with named fields.
function M.result_fields(reply)
  local a = reply.args
  return {
    req = a[1], path = a[2], verdict = a[3], prob_ai = a[4], cnn_prob = a[5],
    demucs_prob = a[6], report = a[7],
  }
end

--- The whole stdout of `aimusicd send ... --json` -> { replies = {...}, result = fields or nil,
--- preliminary = fields or nil, error = message or nil }.
function M.parse_send_output(out)
  local parsed = { replies = {} }
  for line in ((out or "") .. "\n"):gmatch("([^\n]*)\n") do
    local reply = M.parse_reply_line(line)
    if reply then
      parsed.replies[#parsed.replies + 1] = reply
      if reply.address == "/aimusic/result" then
        parsed.result = M.result_fields(reply)
      elseif reply.address == "/aimusic/preliminary" then
        parsed.preliminary = M.result_fields(reply)
      elseif reply.address == "/aimusic/error" then
        parsed.error = tostring(reply.args[3] or "unknown error")
      end
    end
  end
  return parsed
end

--- reaper.ExecProcess returns "<exit code>\n<output>" (or nil when the command could not run).
function M.parse_exec(ret)
  if type(ret) ~= "string" then return nil, "" end
  local code, rest = ret:match("^(%-?%d+)\r?\n(.*)$")
  if not code then
    code = ret:match("^(%-?%d+)%s*$")
    rest = ""
  end
  return tonumber(code), rest or ""
end

--- Quote one command-line argument. REAPER's ExecProcess splits its command line on spaces
--- unless an argument is in double quotes (Windows: CreateProcess rules, elsewhere REAPER's own).
function M.quote_arg(s)
  s = tostring(s)
  if s:find('"', 1, true) then
    return nil, "a double quote in " .. s .. " cannot be passed through REAPER's ExecProcess"
  end
  if s ~= "" and not s:find("[%s]") then return s end
  return '"' .. s .. '"'
end

local function join_command(words)
  local parts = {}
  for _, w in ipairs(words) do
    local q, err = M.quote_arg(w)
    if not q then return nil, err end
    parts[#parts + 1] = q
  end
  return table.concat(parts, " ")
end

--- `aimusicd send /aimusic/analyze <path> <req> [mode] --json --timeout S [SEND_ARGS]`
function M.analyze_command(cfg, path, req)
  local words = { cfg.AIMUSICD, "send", "/aimusic/analyze", path, "i:" .. tostring(req) }
  if cfg.MODE and cfg.MODE ~= "" then words[#words + 1] = cfg.MODE end
  for _, w in ipairs({ "--json", "--timeout", tostring(cfg.ANALYZE_TIMEOUT_S) }) do
    words[#words + 1] = w
  end
  for _, w in ipairs(cfg.SEND_ARGS or {}) do words[#words + 1] = w end
  return join_command(words)
end

function M.ping_command(cfg)
  local words = { cfg.AIMUSICD, "send", "/aimusic/ping", "--json", "--timeout",
                  tostring(cfg.PING_TIMEOUT_S) }
  for _, w in ipairs(cfg.SEND_ARGS or {}) do words[#words + 1] = w end
  return join_command(words)
end

--- What went wrong, in words, for a non-zero exit code of `aimusicd send`.
function M.failure_message(code, parsed, cfg)
  if code == nil then
    return "could not run " .. tostring(cfg.AIMUSICD) ..
      " - set AIMUSICD at the top of aimusicd_render_and_check.lua to the full path of the aimusicd command"
  elseif code == M.EXIT_TIMEOUT then
    return "no answer from the aimusicd daemon - is it running? Start it with `aimusicd run` " ..
      "(or `systemctl --user start aimusicd`, or load the launchd agent)"
  elseif code == M.EXIT_FAILED and parsed and parsed.error then
    return "the daemon refused: " .. tostring(parsed.error)
  elseif code == M.EXIT_FAILED then
    return "aimusicd send failed before asking the daemon (exit 1): another program may hold the " ..
      "reply port 9432 - run the command from the console in a terminal"
  elseif code == M.EXIT_USAGE then
    return "aimusicd send refused its arguments or the preset is invalid (exit 2) - run the command " ..
      "from the console in a terminal"
  elseif code == 127 then
    return "command not found: " .. tostring(cfg.AIMUSICD)
  end
  return "aimusicd send exited with code " .. tostring(code)
end

local function basename(path) return (path:match("([^/\\]+)$")) or path end
M.basename = basename

--- One line per file for the message box.
function M.format_line(path, outcome)
  if outcome.result then
    local r = outcome.result
    local p = tonumber(r.prob_ai)
    return string.format("%-9s p(AI) %s   %s", string.upper(tostring(r.verdict)),
                         p and string.format("%.2f", p) or "?", basename(path))
  end
  return string.format("%-9s %s   %s", "ERROR", outcome.message or "?", basename(path))
end

function M.summary(outcomes)
  local lines, counts = {}, { ai = 0, human = 0, uncertain = 0, failed = 0 }
  for _, o in ipairs(outcomes) do
    lines[#lines + 1] = M.format_line(o.path, o)
    local v = o.result and o.result.verdict
    if v and counts[v] then counts[v] = counts[v] + 1 else counts.failed = counts.failed + 1 end
  end
  local head = string.format("%d file(s): %d ai, %d human, %d uncertain, %d failed", #outcomes,
                             counts.ai, counts.human, counts.uncertain, counts.failed)
  return head .. "\n\n" .. table.concat(lines, "\n"), counts
end

---------------------------------------------------------------------------------------------------
-- REAPER side
---------------------------------------------------------------------------------------------------

local function log(msg) reaper.ShowConsoleMsg(msg .. "\n") end

local function run(cmd, timeout_s)
  log("aimusicd: " .. cmd)
  local ret = reaper.ExecProcess(cmd, math.floor((timeout_s + 30) * 1000))
  local code, out = M.parse_exec(ret)
  return code, out
end

function M.check_file(cfg, path, req)
  local cmd, err = M.analyze_command(cfg, path, req)
  if not cmd then return { path = path, message = err } end
  local code, out = run(cmd, cfg.ANALYZE_TIMEOUT_S)
  local parsed = M.parse_send_output(out)
  if code == M.EXIT_OK and parsed.result then
    local r = parsed.result
    log(string.format("aimusicd: %s p(AI)=%.3f (cnn %.3f, demucs %s) %s\n          report: %s",
      r.verdict, tonumber(r.prob_ai) or -1, tonumber(r.cnn_prob) or -1,
      (tonumber(r.demucs_prob) or -1) < 0 and "not run" or string.format("%.3f", r.demucs_prob),
      path, tostring(r.report)))
    return { path = path, result = r, code = code }
  end
  local message = M.failure_message(code, parsed, cfg)
  log("aimusicd: " .. path .. ": " .. message)
  return { path = path, message = message, code = code }
end

function M.main()
  local cfg = CONFIG
  local title = "aimusicd"
  local before = M.split_targets(select(2, reaper.GetSetProjectInfo_String(0, "RENDER_TARGETS", "", false)))
  if cfg.RENDER_ACTION then
    reaper.Main_OnCommand(cfg.RENDER_ACTION, 0)      -- returns when the render has finished
  end
  local targets = {}
  for _, p in ipairs(before) do
    if reaper.file_exists(p) then targets[#targets + 1] = p end
  end
  if #targets == 0 then   -- the names may have changed (wildcards, auto-increment): ask again
    for _, p in ipairs(M.split_targets(select(2, reaper.GetSetProjectInfo_String(0, "RENDER_TARGETS", "", false)))) do
      if reaper.file_exists(p) then targets[#targets + 1] = p end
    end
  end
  if #targets == 0 then
    reaper.ShowMessageBox("No rendered file found (render cancelled, or nothing to render?).", title, 0)
    return { outcomes = {} }
  end

  if cfg.PING_FIRST then
    local cmd, err = M.ping_command(cfg)
    local code = nil
    if cmd then code = run(cmd, cfg.PING_TIMEOUT_S) end
    if code ~= M.EXIT_OK then
      local message = err or M.failure_message(code, nil, cfg)
      log("aimusicd: " .. message)
      reaper.ShowMessageBox("Cannot check the render:\n\n" .. message, title, 0)
      return { outcomes = {}, error = message, code = code }
    end
  end

  local outcomes = {}
  local base = os.time() % 100000 * 100
  for i, path in ipairs(targets) do
    local outcome = M.check_file(cfg, path, base + i)
    outcomes[#outcomes + 1] = outcome
    if outcome.code == M.EXIT_TIMEOUT or outcome.code == nil then break end   -- daemon gone
  end
  local text = M.summary(outcomes)
  log(text)
  reaper.ShowMessageBox(text .. "\n\nReports: <file>.aimusic.json next to each file.", title, 0)
  return { outcomes = outcomes }
end

if reaper and not AIMUSICD_NO_MAIN then
  M.last_run = M.main()
end

return M
