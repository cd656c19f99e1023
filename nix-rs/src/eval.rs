//! The evaluator thread: every use of Nix's evaluator (and so of its Boehm garbage collector)
//! happens on one thread owned by nix-rs.
//!
//! Why: libexpr's Boehm GC is built with `GC_THREADS`; a thread that touches evaluator values
//! must be registered with the collector, and Nix 2.26 offers no C function to do that. Rather
//! than registering every caller thread (and making GC correctness depend on callers), nix-rs
//! starts one thread on first use, which initialises libexpr (so it is the collector's own
//! thread) and serves requests sent over a channel. Callers block on a reply channel, which is
//! what makes it sound to lend that thread borrowed data (a `Store` pointer, a filter closure).
//!
//! Per store, the thread keeps one `EvalState` and the two helper functions below, evaluated
//! once. A store's state is dropped when its `Store` is.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::{Mutex, OnceLock};

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::context::{Context, StringOut, c_string, catch_panic, string_callback};
use crate::error::{Error, Result};
use crate::source::FileKind;
use crate::store::Store;

/// Creates derivations from a JSON list of the descriptions written by
/// `DerivationBuilder::create` and returns a list of `{ drvPath, <output> = path; … }` as JSON
/// (one call for a whole batch: `DerivationBuilder::create_all`). `outputs` is passed only when it is not the
/// default `[ "out" ]`, so that the result is the very derivation that the equivalent
/// `derivation { … }` expression gives (the attribute would otherwise land in the env).
#[cfg(not(nix_at_least_2_33))]
const DERIVATION_HELPER: &str = r#"
json:
let
  create = d:
    let
      context =
        builtins.mapAttrs (_: outputs: { inherit outputs; }) d.inputDrvs
        // builtins.listToAttrs (map (p: { name = p; value = { path = true; }; }) d.inputSrcs);
    in
    builtins.derivationStrict (d.env // {
      inherit (d) name system args;
      builder = builtins.appendContext d.builder context;
    } // (if d.outputs == [ "out" ] then { } else { inherit (d) outputs; }));
in
builtins.toJSON (map create (builtins.fromJSON json))
"#;

/// Adds a path to the store, filtered: `path: name: filter: <store path>`.
const ADD_PATH_HELPER: &str = r#"
path: name: filter: builtins.path { inherit path name filter; recursive = true; }
"#;

/// Writes a text file to the store: `name: text: refs: <store path>`, `refs` being a JSON list
/// of store paths the text refers to (they become the file's references).
const ADD_TEXT_HELPER: &str = r#"
name: text: refs:
builtins.toFile name (builtins.appendContext text
  (builtins.listToAttrs (map (p: { name = p; value = { path = true; }; }) (builtins.fromJSON refs))))
"#;

/// A filter lent by a blocked caller.
pub(crate) type FilterFn<'a> = dyn Fn(&Path, FileKind) -> bool + Sync + 'a;

enum Request {
    /// 2.26–2.32 only: 2.33+ writes derivations without the evaluator.
    #[cfg(not(nix_at_least_2_33))]
    CreateDerivation {
        store: StoreRef,
        json: String,
        reply: Sender<Result<String>>,
    },
    AddPath {
        store: StoreRef,
        path: String,
        name: String,
        /// Lifetime erased: the caller blocks on `reply` until the evaluator is done with it.
        filter: *const FilterFn<'static>,
        reply: Sender<Result<String>>,
    },
    AddText {
        store: StoreRef,
        name: String,
        text: String,
        refs_json: String,
        reply: Sender<Result<String>>,
    },
    Forget(u64),
}

// SAFETY: the raw pointers in a request (StoreRef, filter) are lent by a caller that blocks on
// the request's reply channel until the evaluator thread has finished with them; a Store is
// Sync and the filter is Sync, so using them from the evaluator thread is sound.
unsafe impl Send for Request {}

struct StoreRef {
    id: u64,
    ptr: *mut nix_sys::Store,
}

static EVALUATOR: OnceLock<Mutex<Option<Sender<Request>>>> = OnceLock::new();

fn sender() -> Result<Sender<Request>> {
    crate::init()?;
    let cell = EVALUATOR.get_or_init(|| {
        let (tx, rx) = unbounded::<Request>();
        let (ready_tx, ready_rx) = bounded::<Result<(), String>>(1);
        let spawned = std::thread::Builder::new().name("nix-evaluator".into()).spawn(move || {
            let ctx = Context::new();
            // SAFETY: live context; libexpr is initialised once, on this thread, which makes
            // it the thread the garbage collector knows.
            let rc = unsafe { nix_sys::nix_libexpr_init(ctx.ptr()) };
            let init = ctx.check(rc, || "nix_libexpr_init".into()).map_err(|e| e.to_string());
            let ok = init.is_ok();
            let _ = ready_tx.send(init);
            if ok {
                serve(rx);
            }
        });
        let sender = match spawned {
            Ok(_) => match ready_rx.recv() {
                Ok(Ok(())) => Some(tx),
                _ => None,
            },
            Err(_) => None,
        };
        Mutex::new(sender)
    });
    cell.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(Error::EvaluatorGone)
}

/// Tells the evaluator thread that a store is gone (no-op if it never saw it).
pub(crate) fn forget_store(id: u64) {
    if let Some(cell) = EVALUATOR.get() {
        if let Some(tx) = cell.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(Request::Forget(id));
        }
    }
}

fn call(make: impl FnOnce(Sender<Result<String>>) -> Request) -> Result<String> {
    let tx = sender()?;
    let (reply_tx, reply_rx) = bounded(1);
    tx.send(make(reply_tx)).map_err(|_| Error::EvaluatorGone)?;
    reply_rx.recv().map_err(|_| Error::EvaluatorGone)?
}

/// Creates derivations from a JSON list of descriptions (`names` names them, for errors);
/// returns, per derivation, (drv path, output name → path).
#[cfg(not(nix_at_least_2_33))]
pub(crate) fn create_derivations(
    store: &Store,
    names: &str,
    json: String,
) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>> {
    let out =
        call(|reply| Request::CreateDerivation { store: StoreRef { id: store.id, ptr: store.as_ptr() }, json, reply })
            .map_err(|e| match e {
                Error::Nix { doing: _, code, name: n, message } => {
                    Error::Nix { doing: format!("creating derivation {names}"), code, name: n, message }
                }
                other => other,
            })?;
    let list: Vec<std::collections::BTreeMap<String, String>> = serde_json::from_str(&out)
        .map_err(|e| Error::invalid("derivation", format!("unexpected result from Nix for {names}: {e}")))?;
    list.into_iter()
        .map(|mut attrs| {
            let drv = attrs
                .remove("drvPath")
                .ok_or_else(|| Error::invalid("derivation", format!("Nix returned no drvPath for {names}")))?;
            Ok((drv, attrs))
        })
        .collect()
}

/// Adds `path` to the store under `name`, keeping what `filter` accepts.
pub(crate) fn add_path(store: &Store, path: &str, name: &str, filter: &FilterFn<'_>) -> Result<String> {
    // SAFETY: only the lifetime is erased; `call` blocks until the evaluator has replied, and
    // the evaluator drops the pointer before replying.
    let filter: *const FilterFn<'static> = unsafe { std::mem::transmute(filter as *const FilterFn<'_>) };
    call(|reply| Request::AddPath {
        store: StoreRef { id: store.id, ptr: store.as_ptr() },
        path: path.to_owned(),
        name: name.to_owned(),
        filter,
        reply,
    })
}

/// Adds a text file called `name` with `text`, referring to the store paths in `refs_json`.
pub(crate) fn add_text(store: &Store, name: &str, text: String, refs_json: String) -> Result<String> {
    call(|reply| Request::AddText {
        store: StoreRef { id: store.id, ptr: store.as_ptr() },
        name: name.to_owned(),
        text,
        refs_json,
        reply,
    })
}

/// An `EvalState` and its helper functions, for one store.
struct Evaluator {
    state: NonNull<nix_sys::EvalState>,
    derivation_fn: *mut nix_sys::nix_value,
    add_path_fn: *mut nix_sys::nix_value,
    add_text_fn: *mut nix_sys::nix_value,
}

impl Evaluator {
    fn new(store: *mut nix_sys::Store) -> Result<Evaluator> {
        let ctx = Context::new();
        // Through the builder, not `nix_state_create`: in Nix 2.26 that function never frees
        // the builder it makes, and the builder's reference keeps the whole store open (its
        // database, locks and file descriptors) after the store and the state are freed.
        // SAFETY: live context; `store` is lent by a blocked caller. The builder takes its own
        // reference to the store.
        let builder = unsafe { nix_sys::nix_eval_state_builder_new(ctx.ptr(), store) };
        if builder.is_null() {
            ctx.check_last(|| "creating an evaluator".into())?;
            return Err(Error::EvaluatorGone);
        }
        struct Builder(*mut nix_sys::nix_eval_state_builder);
        impl Drop for Builder {
            fn drop(&mut self) {
                // SAFETY: the builder came from nix_eval_state_builder_new and is freed once.
                unsafe { nix_sys::nix_eval_state_builder_free(self.0) }
            }
        }
        let builder = Builder(builder);
        // SAFETY: live context and builder.
        let rc = unsafe { nix_sys::nix_eval_state_builder_load(ctx.ptr(), builder.0) };
        ctx.check(rc, || "loading the evaluator's settings".into())?;
        let lookup: [*const c_char; 1] = [ptr::null()];
        // SAFETY: live context and builder; the lookup path is an empty NULL-terminated array,
        // copied by the builder.
        let rc = unsafe {
            nix_sys::nix_eval_state_builder_set_lookup_path(ctx.ptr(), builder.0, lookup.as_ptr().cast_mut())
        };
        ctx.check(rc, || "setting the evaluator's lookup path".into())?;
        // SAFETY: live context and builder. The EvalState keeps its own reference to the store;
        // the builder is freed when `builder` goes out of scope.
        let state = unsafe { nix_sys::nix_eval_state_build(ctx.ptr(), builder.0) };
        let state = match NonNull::new(state) {
            Some(s) => s,
            None => {
                ctx.check_last(|| "creating an evaluator".into())?;
                return Err(Error::EvaluatorGone);
            }
        };
        let mut ev = Evaluator {
            state,
            derivation_fn: ptr::null_mut(),
            add_path_fn: ptr::null_mut(),
            add_text_fn: ptr::null_mut(),
        };
        #[cfg(not(nix_at_least_2_33))]
        {
            ev.derivation_fn = ev.eval(DERIVATION_HELPER)?;
        }
        ev.add_path_fn = ev.eval(ADD_PATH_HELPER)?;
        ev.add_text_fn = ev.eval(ADD_TEXT_HELPER)?;
        Ok(ev)
    }

    fn alloc(&self, ctx: &Context) -> Result<*mut nix_sys::nix_value> {
        // SAFETY: live context and state. The value comes with one reference, released by
        // `Value`'s drop or by Evaluator::drop.
        let v = unsafe { nix_sys::nix_alloc_value(ctx.ptr(), self.state.as_ptr()) };
        if v.is_null() {
            ctx.check_last(|| "allocating a Nix value".into())?;
        }
        Ok(v)
    }

    fn eval(&self, expr: &str) -> Result<*mut nix_sys::nix_value> {
        let ctx = Context::new();
        let v = self.alloc(&ctx)?;
        let expr_c = c_string("expression", expr)?;
        // SAFETY: live context, state and value; NUL-terminated strings.
        let rc = unsafe {
            nix_sys::nix_expr_eval_from_string(ctx.ptr(), self.state.as_ptr(), expr_c.as_ptr(), c"/".as_ptr(), v)
        };
        ctx.check(rc, || "evaluating a nix-rs helper".into())?;
        Ok(v)
    }

    fn string_value(&self, ctx: &Context, s: &str, what: &str) -> Result<Value> {
        let v = Value(self.alloc(ctx)?);
        let s_c = c_string(what, s)?;
        // SAFETY: live context and value; NUL-terminated string (copied by Nix).
        let rc = unsafe { nix_sys::nix_init_string(ctx.ptr(), v.0, s_c.as_ptr()) };
        ctx.check(rc, || format!("making a Nix string for {what}"))?;
        Ok(v)
    }

    /// Calls `f` with `args`, forces the result and returns it as a string.
    fn call_to_string(
        &self,
        ctx: &Context,
        f: *mut nix_sys::nix_value,
        args: &[&Value],
        doing: &str,
    ) -> Result<String> {
        let result = Value(self.alloc(ctx)?);
        let mut argv: Vec<*mut nix_sys::nix_value> = args.iter().map(|v| v.0).collect();
        // SAFETY: live context, state and values; argv holds args.len() live values.
        let rc = unsafe {
            nix_sys::nix_value_call_multi(ctx.ptr(), self.state.as_ptr(), f, argv.len(), argv.as_mut_ptr(), result.0)
        };
        ctx.check(rc, || doing.to_owned())?;
        // SAFETY: as above.
        let rc = unsafe { nix_sys::nix_value_force(ctx.ptr(), self.state.as_ptr(), result.0) };
        ctx.check(rc, || doing.to_owned())?;
        let mut out = StringOut::default();
        // SAFETY: live context and value; the callback copies into `out`.
        let rc = unsafe { nix_sys::nix_get_string(ctx.ptr(), result.0, Some(string_callback), out.as_user_data()) };
        ctx.check(rc, || doing.to_owned())?;
        Ok(out.0.unwrap_or_default())
    }

    /// Empties Nix 2.26's process-wide cache of `lstat` results (`PosixSourceAccessor::
    /// cachedLstat`), which is never invalidated: after a file under a tree vanished mid-walk,
    /// its "missing" entry would make every later `add_path` of that tree fail, even once the
    /// file is back. The cache clears itself when it reaches 16384 entries, so this looks up
    /// 16385 paths that it cannot hold yet (new ones on each call). A few milliseconds; only
    /// done after a failed `add_path`.
    fn flush_stat_cache(&self) {
        static FLUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = FLUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let expr = format!(
            "builtins.length (builtins.filter (i: builtins.pathExists \"/nix-rs-stat-cache-flush-{}-{n}/${{toString i}}\") \
             (builtins.genList (i: i) 16385))",
            std::process::id()
        );
        if let Ok(v) = self.eval(&expr) {
            drop(Value(v));
        }
    }

    /// Empties Nix 2.35's cache of directory descriptors. The process-wide accessor for `/`
    /// (`getFSSourceAccessor()`, a `PosixDirectorySourceAccessor`, under every `EvalState`)
    /// keeps an LRU cache of `O_PATH` descriptors of the directories it opened (`dirFdCache`,
    /// `min(4096, RLIMIT_NOFILE / 8) / 8` entries, so at most 512), and reads everything under a
    /// directory through its cached descriptor. A directory that vanished keeps its descriptor
    /// there, so once it is recreated Nix still looks into the deleted one and says "path …
    /// does not exist". Only `EvalState::resetFileCache` empties it, and no C function calls that
    /// (only `nix_flake_lock`). This opens 520 fresh directories through the same accessor
    /// (`builtins.pathExists` of a file in each), which pushes every older entry out. A few
    /// milliseconds; only done after a failed `add_path`.
    #[cfg(nix_at_least_2_35)]
    fn flush_dir_fd_cache(&self) {
        const DIRS: usize = 520;
        let Ok(dir) = tempfile::Builder::new().prefix("nix-rs-dirfd-flush-").tempdir() else { return };
        if (0..DIRS).any(|i| std::fs::create_dir(dir.path().join(i.to_string())).is_err()) {
            return;
        }
        let Some(base) = dir.path().to_str() else { return };
        let expr = format!(
            "builtins.length (builtins.filter (i: builtins.pathExists \"{base}/${{toString i}}/x\") \
             (builtins.genList (i: i) {DIRS}))"
        );
        if let Ok(v) = self.eval(&expr) {
            drop(Value(v));
        }
    }

    #[cfg(not(nix_at_least_2_33))]
    fn create_derivation(&self, json: &str) -> Result<String> {
        let ctx = Context::new();
        let arg = self.string_value(&ctx, json, "derivation")?;
        self.call_to_string(&ctx, self.derivation_fn, &[&arg], "creating a derivation")
    }

    fn add_text(&self, name: &str, text: &str, refs_json: &str) -> Result<String> {
        let ctx = Context::new();
        let args = [
            self.string_value(&ctx, name, "text file name")?,
            self.string_value(&ctx, text, "text file contents")?,
            self.string_value(&ctx, refs_json, "text file references")?,
        ];
        self.call_to_string(
            &ctx,
            self.add_text_fn,
            &[&args[0], &args[1], &args[2]],
            &format!("adding text file '{name}'"),
        )
    }

    fn add_path(&self, path: &str, name: &str, filter: &FilterFn<'_>) -> Result<String> {
        let ctx = Context::new();
        let doing = format!("adding '{path}' to the store");
        let path_v = Value(self.alloc(&ctx)?);
        let path_c = c_string("source path", path)?;
        // SAFETY: live context, state and value; NUL-terminated path.
        let rc = unsafe { nix_sys::nix_init_path_string(ctx.ptr(), self.state.as_ptr(), path_v.0, path_c.as_ptr()) };
        ctx.check(rc, || doing.clone())?;
        let name_v = self.string_value(&ctx, name, "source name")?;

        let call = FilterCall { root: Path::new(path), filter, panic: Mutex::new(None) };
        let filter_v = Value(self.alloc(&ctx)?);
        let arg_names: [*const c_char; 3] = [c"path".as_ptr(), c"type".as_ptr(), ptr::null()];
        // SAFETY: live context; the trampoline matches PrimOpFun; `call` outlives every use of
        // the primop: it is only called during call_to_string below, and the primop value is
        // not stored anywhere that outlives this function (builtins.path returns a string).
        let op = unsafe {
            nix_sys::nix_alloc_primop(
                ctx.ptr(),
                Some(filter_trampoline),
                2,
                c"nix-rs-filter".as_ptr(),
                arg_names.as_ptr().cast_mut(),
                c"nix-rs source filter".as_ptr(),
                (&call as *const FilterCall<'_>).cast_mut().cast(),
            )
        };
        if op.is_null() {
            ctx.check_last(|| doing.clone())?;
        }
        // SAFETY: live context, value and primop.
        let rc = unsafe { nix_sys::nix_init_primop(ctx.ptr(), filter_v.0, op) };
        ctx.check(rc, || doing.clone())?;

        let result = self.call_to_string(&ctx, self.add_path_fn, &[&path_v, &name_v, &filter_v], &doing);
        if result.is_err() {
            self.flush_stat_cache();
            #[cfg(nix_at_least_2_35)]
            self.flush_dir_fd_cache();
        }
        if let Some(message) = call.panic.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Error::CallbackPanicked(format!("source filter for '{path}': {message}")));
        }
        result
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        let ctx = Context::new();
        for v in [self.derivation_fn, self.add_path_fn, self.add_text_fn] {
            if !v.is_null() {
                // SAFETY: v was allocated with one reference by this evaluator.
                unsafe { nix_sys::nix_value_decref(ctx.ptr(), v) };
            }
        }
        // SAFETY: the state came from nix_eval_state_build and is freed once, on this thread.
        unsafe { nix_sys::nix_state_free(self.state.as_ptr()) }
    }
}

/// A value holding one reference, released on drop.
struct Value(*mut nix_sys::nix_value);

impl Drop for Value {
    fn drop(&mut self) {
        let ctx = Context::new();
        // SAFETY: the value was allocated with one reference that this handle owns.
        unsafe { nix_sys::nix_value_decref(ctx.ptr(), self.0) };
    }
}

struct FilterCall<'a> {
    root: &'a Path,
    filter: &'a FilterFn<'a>,
    panic: Mutex<Option<String>>,
}

/// The primop that Nix calls for each file under a source root.
///
/// # Safety
/// `user_data` must be a live `FilterCall`; `args` two live values; called by Nix's evaluator.
unsafe extern "C" fn filter_trampoline(
    user_data: *mut c_void,
    context: *mut nix_sys::nix_c_context,
    state: *mut nix_sys::EvalState,
    args: *mut *mut nix_sys::nix_value,
    ret: *mut nix_sys::nix_value,
) {
    // SAFETY: user_data is the FilterCall that add_path lent for this call.
    let call = unsafe { &*user_data.cast::<FilterCall<'_>>() };
    let mut strings = [String::new(), String::new()];
    for (i, s) in strings.iter_mut().enumerate() {
        // SAFETY: Nix passes `arity` (2) live argument values; context and state are live.
        unsafe {
            let v = *args.add(i);
            if nix_sys::nix_value_force(context, state, v) != nix_sys::NIX_OK {
                return;
            }
            let mut out = StringOut::default();
            if nix_sys::nix_get_string(context, v, Some(string_callback), out.as_user_data()) != nix_sys::NIX_OK {
                return;
            }
            *s = out.0.unwrap_or_default();
        }
    }
    let [path, kind] = strings;
    let kind = match kind.as_str() {
        "regular" => FileKind::Regular,
        "directory" => FileKind::Directory,
        "symlink" => FileKind::Symlink,
        _ => FileKind::Other,
    };
    let abs = Path::new(&path);
    let rel = abs.strip_prefix(call.root).unwrap_or(abs);
    match catch_panic(|| (call.filter)(rel, kind)) {
        // SAFETY: live context and return value.
        Ok(keep) => unsafe {
            nix_sys::nix_init_bool(context, ret, keep);
        },
        Err(message) => {
            *call.panic.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
            // SAFETY: live context; the message is a static NUL-terminated string.
            unsafe {
                nix_sys::nix_set_err_msg(context, nix_sys::NIX_ERR_UNKNOWN, c"the source filter panicked".as_ptr())
            };
        }
    }
}

fn serve(rx: crossbeam_channel::Receiver<Request>) {
    let mut evaluators: HashMap<u64, Evaluator> = HashMap::new();
    for request in rx {
        match request {
            #[cfg(not(nix_at_least_2_33))]
            Request::CreateDerivation { store, json, reply } => {
                let r = with_evaluator(&mut evaluators, &store, |ev| ev.create_derivation(&json));
                let _ = reply.send(r);
            }
            Request::AddPath { store, path, name, filter, reply } => {
                // SAFETY: the caller blocks on `reply`, so the filter is alive until we reply.
                let filter = unsafe { &*filter };
                let r = with_evaluator(&mut evaluators, &store, |ev| ev.add_path(&path, &name, filter));
                let _ = reply.send(r);
            }
            Request::AddText { store, name, text, refs_json, reply } => {
                let r = with_evaluator(&mut evaluators, &store, |ev| ev.add_text(&name, &text, &refs_json));
                let _ = reply.send(r);
            }
            Request::Forget(id) => {
                evaluators.remove(&id);
            }
        }
    }
}

/// Runs `f` with the store's evaluator (made on first use); a panic becomes an error.
fn with_evaluator(
    evaluators: &mut HashMap<u64, Evaluator>,
    store: &StoreRef,
    f: impl FnOnce(&Evaluator) -> Result<String>,
) -> Result<String> {
    catch_panic(|| {
        let ev = match evaluators.entry(store.id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(Evaluator::new(store.ptr)?),
        };
        f(ev)
    })
    .unwrap_or_else(|m| Err(Error::CallbackPanicked(m)))
}
