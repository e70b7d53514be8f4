# Entry point only: the app lives in amr/.
from amr.app import main

main()
