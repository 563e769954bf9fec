print("lesson-tp: coming with lesson 2")
