// aimusicd for Bitwig Studio: a controller script (no MIDI ports) that shows the daemon's verdicts
// as Bitwig pop-up notifications.
//
// On start it subscribes to the daemon (/aimusic/subscribe <this host> <listen port>), so every
// analysis the daemon finishes - the files it sees appear in your export folder (preset
// bitwig-exports) as well as requests from other tools - shows up as a notification. In the
// controller's preferences you can also type a path and press "Analyse", ping the daemon, or
// ask for its status.
//
// Install: copy this file into ~/Documents/Bitwig Studio/Controller Scripts/aimusicd/ (the same
// folder on macOS, Windows and Linux), then Settings > Controllers > Add controller > aimusicd >
// aimusicd. Bitwig opens OSC sockets only while a script initialises: after changing a port in the
// preferences, turn the controller off and on again.

loadAPI(10);
host.setShouldFailOnDeprecatedUse(true);
host.defineController("aimusicd", "aimusicd", "0.1", "5f0c54a2-4a8e-4f3c-9d7a-1e2b3c4d5e6f", "aimusicd");
host.defineMidiPorts(0, 0);

var DEFAULTS = { host: "127.0.0.1", port: 9431, listenPort: 9433, resubscribeMs: 30000 };

var state = {
    daemon: null,          // OscConnection to the daemon
    listenPort: DEFAULTS.listenPort,
    listenHost: DEFAULTS.host,
    pathSetting: null,
    lastVerdict: null,
    nextRequest: 1,
    running: false
};

// -- pure helpers (the tests call these through a stub host) ---------------------------------------
function baseName(path) {
    var s = String(path);
    var i = Math.max(s.lastIndexOf("/"), s.lastIndexOf("\\"));
    return i >= 0 ? s.substring(i + 1) : s;
}

function percent(p) {
    var x = Number(p);
    if (isNaN(x) || x < 0) return "n/a";
    return Math.round(x * 100) + "%";
}

// args of /aimusic/result: i:req s:path s:verdict f:prob_ai f:cnn_prob f:demucs_prob s:report
function describeResult(args) {
    return "aimusicd: " + String(args[2]).toUpperCase() + " (P(AI) " + percent(args[3]) + ") " + baseName(args[1]);
}

function describePreliminary(args) {
    return "aimusicd: " + String(args[2]) + " so far (P(AI) " + percent(args[3]) + "), checking further: " + baseName(args[1]);
}

function describeError(args) {
    return "aimusicd error: " + String(args[2]);
}

function messageArgs(message) {
    var list = message.getArguments();
    var out = [];
    for (var i = 0; i < list.size(); i++) out.push(list.get(i));
    return out;
}

// -- sending ---------------------------------------------------------------------------------------
function send(address) {
    if (!state.daemon) return false;
    var args = Array.prototype.slice.call(arguments, 1);
    try {
        state.daemon.sendMessage.apply(state.daemon, [address].concat(args));
        return true;
    } catch (e) {
        host.errorln("aimusicd: cannot send " + address + ": " + e);
        return false;
    }
}

function subscribe() {
    // explicit host and port: replies to this script's sending socket would go nowhere
    return send("/aimusic/subscribe", state.listenHost, state.listenPort);
}

function analyse(path) {
    path = String(path || "").trim();
    if (path === "") {
        host.showPopupNotification("aimusicd: type the path of a file in the controller preferences first");
        return false;
    }
    var req = state.nextRequest++;
    host.println("aimusicd: analyse #" + req + " " + path);
    return send("/aimusic/analyze", path, req);
}

function resubscribeLater() {
    host.scheduleTask(function () {
        if (!state.running) return;
        subscribe();          // the daemon forgets subscribers when it restarts
        resubscribeLater();
    }, DEFAULTS.resubscribeMs);
}

// -- receiving -------------------------------------------------------------------------------------
function registerReplies(space) {
    space.registerMethod("/aimusic/result", "*", "analysis result", function (source, message) {
        var args = messageArgs(message);
        state.lastVerdict = String(args[2]);
        var text = describeResult(args);
        host.println(text + " - report " + args[6]);
        host.showPopupNotification(text);
    });
    space.registerMethod("/aimusic/preliminary", "*", "first verdict (Demucs still running)", function (source, message) {
        host.showPopupNotification(describePreliminary(messageArgs(message)));
    });
    space.registerMethod("/aimusic/error", "*", "error", function (source, message) {
        var text = describeError(messageArgs(message));
        host.errorln(text);
        host.showPopupNotification(text);
    });
    space.registerMethod("/aimusic/pong", "*", "pong", function (source, message) {
        host.showPopupNotification("aimusicd " + messageArgs(message)[1] + " is running");
    });
    space.registerMethod("/aimusic/status.reply", "*", "status", function (source, message) {
        var a = messageArgs(message);
        host.showPopupNotification("aimusicd: " + a[0] + " queued, " + a[1] + " running, " + a[2] + " done, " + a[4] + " failed");
    });
    space.registerMethod("/aimusic/live/alert", "*", "live alert", function (source, message) {
        var a = messageArgs(message);
        host.showPopupNotification("aimusicd: live input sounds AI-generated (P(AI) " + percent(a[0]) + ")");
    });
    space.registerMethod("/aimusic/subscribed", "*", "subscribed", function (source, message) {
        host.println("aimusicd: subscribed " + messageArgs(message).join(":"));
    });
    space.registerDefaultMethod(function (source, message) { /* queued, live scores: not shown */ });
}

// -- life cycle ------------------------------------------------------------------------------------
function init() {
    var prefs = host.getPreferences();
    var hostSetting = prefs.getStringSetting("Daemon host", "aimusicd", 64, DEFAULTS.host);
    var portSetting = prefs.getNumberSetting("Daemon port", "aimusicd", 1, 65535, 1, "", DEFAULTS.port);
    var listenSetting = prefs.getNumberSetting("Listen port (this script)", "aimusicd", 1, 65535, 1, "", DEFAULTS.listenPort);
    // where the daemon sends results: this computer's address as the daemon sees it
    var replyHostSetting = prefs.getStringSetting("This computer's address", "aimusicd", 64, DEFAULTS.host);
    state.pathSetting = prefs.getStringSetting("File to analyse", "aimusicd", 1024, "");
    prefs.getSignalSetting("Analyse", "aimusicd", "Analyse the file").addSignalObserver(function () {
        analyse(state.pathSetting.get());
    });
    prefs.getSignalSetting("Ping", "aimusicd", "Ping the daemon").addSignalObserver(function () { send("/aimusic/ping"); });
    prefs.getSignalSetting("Status", "aimusicd", "Daemon status").addSignalObserver(function () { send("/aimusic/status"); });

    var daemonHost = hostSetting.get() || DEFAULTS.host;
    var daemonPort = Math.round(portSetting.getRaw());
    state.listenPort = Math.round(listenSetting.getRaw());
    state.listenHost = replyHostSetting.get() || DEFAULTS.host;

    var osc = host.getOscModule();
    var space = osc.createAddressSpace();
    space.setName("aimusicd replies");
    registerReplies(space);
    try {
        osc.createUdpServer(state.listenPort, space);
    } catch (e) {
        host.errorln("aimusicd: cannot listen on port " + state.listenPort + ": " + e);
    }
    state.daemon = osc.connectToUdpServer(daemonHost, daemonPort, osc.createAddressSpace());
    state.running = true;
    subscribe();
    resubscribeLater();
    host.println("aimusicd: talking to " + daemonHost + ":" + daemonPort + ", listening on " + state.listenPort);
}

function flush() {
}

function exit() {
    state.running = false;
    send("/aimusic/unsubscribe", state.listenHost, state.listenPort);
}
