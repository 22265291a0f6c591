#include <doctest/doctest.h>
TEST_CASE("todo"){CHECK(true);}
