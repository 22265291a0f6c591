#include <doctest/doctest.h>
#include "mountfs/view_layout.hpp"
using namespace secretshim::mountfs;
TEST_CASE("an empty reference list plans an empty view") { CHECK(planView({}).has_value()); }
