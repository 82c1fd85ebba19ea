-- Samples where Prosody's Lua code spends its instructions: a count hook on the
-- main thread and on every coroutine resumed after load counts, every 1,000 VM
-- instructions, the running function and its caller. The cumulative counts are
-- written about every half second of CPU to lua-profile.txt in the data
-- directory; a run diffs two readings. C functions (expat, string.gsub) run no
-- VM instructions: their cost shows only in the CPU figures.
module:set_global();

local counts = {};
local getinfo, sethook, gethook, clock = debug.getinfo, debug.sethook, debug.gethook, os.clock;
local path = prosody.paths.data .. "/lua-profile.txt";
local last_dump = clock();

local function where(level)
	local info = getinfo(level, "Sn");
	if not info then return "?"; end
	return (info.short_src or "?") .. ":" .. (info.linedefined or 0) .. " " .. (info.name or "?");
end

local function dump()
	local out = io.open(path .. ".new", "w");
	for key, n in pairs(counts) do out:write(n, "\t", key, "\n"); end
	out:close();
	os.rename(path .. ".new", path);
end

local function hook()
	local key = where(3) .. " < " .. where(4);
	counts[key] = (counts[key] or 0) + 1;
	local now = clock();
	if now - last_dump > 0.5 then
		last_dump = now;
		dump();
	end
end

-- Modules load inside a coroutine: the main thread, which runs the network
-- loop, is the registry's first entry.
sethook(debug.getregistry()[1], hook, "", 1000);
-- util.async copies its creator's hook into each runner: hook every thread as it is resumed.
local resume = coroutine.resume;
coroutine.resume = function (thread, ...)
	if gethook(thread) ~= hook then sethook(thread, hook, "", 1000); end
	return resume(thread, ...);
end
module:add_timer(1, function () dump(); return 1; end);
