/* The parts of the Nix C API that nix-sys binds. */
#include <nix_api_util.h>
#include <nix_api_store.h>
#include <nix_api_expr.h>
#include <nix_api_value.h>
#include <nix_api_main.h>
