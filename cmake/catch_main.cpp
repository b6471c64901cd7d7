// The one Catch2 main for every test executable (kept in its own TU: Catch2's main is slow to compile).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
